package web_test

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"io"
	"testing"

	"github.com/fieldsync/fieldsync/agent/api"
	"github.com/fieldsync/fieldsync/agent/attach"
)

// A file the fake holds: its manifest, its bytes and how it is listed.
type fakeFile struct {
	m       attach.Manifest
	data    []byte
	listing api.Attachment
}

// seedAttachments gives idMai a face photo (a real PNG, so the browser can
// draw it) and three fingerprint templates, one of them with its bytes
// still on their way.
func (f *fakeAgent) seedAttachments(t testing.TB) {
	img := image.NewRGBA(image.Rect(0, 0, 24, 32))
	for x := range 24 {
		for y := range 32 {
			img.Set(x, y, color.RGBA{uint8(10 * x), uint8(8 * y), 120, 255})
		}
	}
	var photo bytes.Buffer
	if err := png.Encode(&photo, img); err != nil {
		t.Fatal(err)
	}
	f.addFile(t, idMai, attach.KindPhoto, "", photo.Bytes(), devA, 5, true)
	for i, finger := range []string{"right_thumb", "right_index", "left_thumb"} {
		tmpl := append([]byte("FMR\x00 20\x00"), bytes.Repeat([]byte{byte(i + 1), 0x5a}, 9000)...)
		f.addFile(t, idMai, attach.KindFingerprint, finger, tmpl, devA, 6+i, finger != "left_thumb")
	}
}

func (f *fakeAgent) addFile(t testing.TB, id string, kind attach.Kind, finger string, data []byte, d device, min int, complete bool) {
	c := attach.NewChunker(bytes.NewReader(data), kind, finger, attach.MaxSize)
	for {
		_, _, err := c.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("chunk %s: %v", kind, err)
		}
	}
	m, err := c.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if f.files == nil {
		f.files = map[string][]*fakeFile{}
	}
	f.files[id] = append(f.files[id], &fakeFile{m: m, data: data, listing: api.Attachment{
		Kind: string(kind), Finger: finger, SHA256: m.SHA256Hex(), Size: m.Size, MediaType: m.MediaType,
		Chunks: len(m.Chunks), CapturedBy: d.name, CapturedByID: d.id, CapturedAt: f.at(min),
		Op: f.op(d), Complete: complete}})
}

func (f *fakeAgent) Attach(context.Context, api.AttachRequest) (api.Attached, error) {
	return api.Attached{}, errors.New("the web page does not attach files")
}

func (f *fakeAgent) Attachments(_ context.Context, id string) ([]api.Attachment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.records[id]; !ok {
		return nil, api.ErrNotFound
	}
	out := []api.Attachment{}
	for _, file := range f.files[id] {
		out = append(out, file.listing)
	}
	return out, nil
}

func (f *fakeAgent) AttachmentFile(_ context.Context, sha [32]byte) (attach.Manifest, func(int) ([]byte, error), error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, files := range f.files {
		for _, file := range files {
			if file.m.SHA256 != sha {
				continue
			}
			if !file.listing.Complete {
				return attach.Manifest{}, nil, api.ErrIncomplete
			}
			data := file.data
			return file.m, func(i int) ([]byte, error) {
				from := i * attach.ChunkSize
				return data[from : from+file.m.ChunkLen(i)], nil
			}, nil
		}
	}
	return attach.Manifest{}, nil, api.ErrAttachmentNotFound
}
