package vault

import (
	"bytes"
	"testing"
)

// FuzzOpenSealed feeds arbitrary bytes to the sealed-file reader: it must
// never panic, and must never return plaintext for anything but the bytes
// Seal produced.
func FuzzOpenSealed(f *testing.F) {
	fileKey := bytes.Repeat([]byte{7}, KeySize)
	k := &Key{files: fileKey}
	good, err := k.Seal("device.key", []byte("seed bytes"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good, "device.key")
	f.Add([]byte(sealMagic), "device.key")
	f.Add([]byte{}, "")
	f.Add(good[:len(good)-1], "device.key")
	f.Fuzz(func(t *testing.T, data []byte, name string) {
		pt, err := OpenSealed(fileKey, name, data)
		if err != nil {
			return
		}
		// Each fuzz worker seals its own seed (the nonce is random), so
		// what may open is any seal of "seed bytes" under "device.key".
		if name != "device.key" || string(pt) != "seed bytes" || len(data) != len(good) {
			t.Fatalf("opened something Seal did not make: %x under %q", data, name)
		}
	})
}
