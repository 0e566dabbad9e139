package main

import (
	"bytes"
	"crypto/sha256"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/unicode/norm"

	"github.com/fieldsync/fieldsync/agent/identity"
	"github.com/fieldsync/fieldsync/agent/store"
	"github.com/fieldsync/fieldsync/agent/vault"
	"github.com/fieldsync/fieldsync/cmd/internal/harness"
)

// grepTree counts the files under dir whose bytes contain needle.
func grepTree(t *testing.T, dir string, needle []byte) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, needle) {
			hits = append(hits, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

// treeHash hashes every file's name and content under dir.
func treeHash(t *testing.T, dir string) [32]byte {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		h.Write([]byte(path))
		h.Write(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

// A canary dossier crosses a laptop, a second laptop and the hub; once all
// three stop, no data directory holds its name (NFC or NFD) or its ID
// number in any byte, and no key file holds a raw private key or the
// deployment secret.
func TestE2ENothingReadableAtRest(t *testing.T) {
	c := cluster(t)
	hub := startHub(t, c, "hub")
	a := start(t, c, "laptop-a")
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := a.Start("--hub", hub.Listen); err != nil {
		t.Fatal(err)
	}
	b := start(t, c, "laptop-b", a)

	const name = "Hờ Thị Quỳnh Canary"
	const personalID = "002099887766"
	fields := dossier(0, "Pả Vi")
	fields["full_name"], fields["personal_id"] = name, personalID
	id := put(t, a, fields)
	converge(t, []string{id}, a, b)
	if err := harness.WaitFor(60*time.Second, func() (bool, error) {
		recs, err := hub.Client.ListAll(ctx)
		return err == nil && len(recs) == 1, nil
	}); err != nil {
		t.Fatal("the hub never got the canary")
	}

	var secrets [][]byte
	for _, x := range []*harness.Agent{a, b, hub} {
		dev, err := harness.LoadDevice(x.Data)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, dev.Private.Seed(), dev.DeploymentSecret)
	}
	for _, x := range []*harness.Agent{a, b, hub} {
		if err := x.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	nfd := norm.NFD.String(name)
	if nfd == name {
		t.Fatal("the canary name has no distinct NFD form")
	}
	for _, x := range []*harness.Agent{a, b, hub} {
		for _, needle := range []string{name, nfd, personalID, "Quỳnh", "Canary"} {
			if hits := grepTree(t, x.Data, []byte(needle)); len(hits) > 0 {
				t.Errorf("%s: %q found in %v", x.Name, needle, hits)
			}
		}
		for _, s := range secrets {
			if hits := grepTree(t, x.Data, s); len(hits) > 0 {
				t.Errorf("%s: a raw key or the deployment secret found in %v", x.Name, hits)
			}
		}
		if strings.Contains(x.Log(), personalID) || strings.Contains(x.Log(), "Canary") {
			t.Errorf("%s's log holds the canary", x.Name)
		}
	}
	auth, err := harness.LoadAuthority(c.Authority)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range [][]byte{auth.Private.Seed(), auth.Secret} {
		if hits := grepTree(t, c.Authority, s); len(hits) > 0 {
			t.Errorf("the authority key or the deployment secret in clear in %v", hits)
		}
	}
	if hits := grepTree(t, c.RuntimeDir(), []byte(personalID)); len(hits) > 0 {
		t.Errorf("runtime files hold the canary: %v", hits)
	}

	// A wrong passphrase, or none, exits with code 3 and changes nothing.
	before := treeHash(t, a.Data)
	for _, env := range [][]string{{EnvPassphrase + "=not the passphrase"}, {EnvPassphrase + "="}} {
		cmd := exec.Command(c.Bin, "agent", "--data", a.Data, "--no-mdns", "--listen", "127.0.0.1:0", "--api", "127.0.0.1:0")
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdin = nil
		out, err := cmd.CombinedOutput()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != exitLocked {
			t.Fatalf("agent with %v: %v\n%s", env, err, out)
		}
		if !strings.Contains(string(out), "mật khẩu") || !strings.Contains(string(out), "passphrase") {
			t.Fatalf("agent with %v: no bilingual explanation:\n%s", env, out)
		}
	}
	if treeHash(t, a.Data) != before {
		t.Fatal("a refused start changed the data directory")
	}
	// And the right one still opens it, with the canary intact.
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	rec, err := a.Client.Get(ctx, id)
	if err != nil || rec.Fields["full_name"] != name || rec.Fields["personal_id"] != personalID {
		t.Fatalf("after restart: %+v, %v", rec.Fields, err)
	}
}

// plainDataDir turns a provisioned (encrypted) harness agent's data
// directory into one from before encryption at rest, holding n dossiers.
func plainDataDir(t *testing.T, c *harness.Cluster, x *harness.Agent, n int) {
	t.Helper()
	auth, err := harness.LoadAuthority(c.Authority)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(x.Data); err != nil {
		t.Fatal(err)
	}
	dev, err := identity.InitDevice(auth, x.Data, x.Name, identity.RoleField, time.Now(), 30*24*time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	ops, _, err := harness.SignedDossiers(dev, n, 7)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := harness.Ingest(store.DefaultOptions(filepath.Join(x.Data, "store")), dev, ops); err != nil {
		t.Fatal(err)
	}
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
}

// A data directory from before encryption at rest: the agent refuses it
// with the command that converts it; `device encrypt` killed with -9 at
// random moments leaves the old store or the new one usable every time,
// and finishing the conversion keeps every dossier.
func TestE2EDeviceEncryptSurvivesKill9(t *testing.T) {
	const n = 3000
	c := cluster(t)
	x, err := c.Provision("laptop-old", "field")
	if err != nil {
		t.Fatal(err)
	}
	plainDataDir(t, c, x, n)
	if hits := grepTree(t, x.Data, []byte("Thôn ")); len(hits) == 0 {
		t.Fatal("the plain directory holds no readable dossier text: the check after encryption would prove nothing")
	}
	pristine := filepath.Join(t.TempDir(), "pristine")
	copyTree(t, x.Data, pristine)

	cmd := exec.Command(c.Bin, "agent", "--data", x.Data, "--no-mdns", "--listen", "127.0.0.1:0", "--api", "127.0.0.1:0")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitLocked || !strings.Contains(string(out), "device encrypt --data") {
		t.Fatalf("agent on a plain directory: %v\n%s", err, out)
	}

	// Time one whole conversion, then kill others at moments spread over
	// it, so that tries land before, at and after the commit point.
	timed := filepath.Join(t.TempDir(), "timed")
	copyTree(t, pristine, timed)
	began := time.Now()
	if out, err := exec.Command(c.Bin, "device", "encrypt", "--data", timed).CombinedOutput(); err != nil {
		t.Fatalf("device encrypt: %v\n%s", err, out)
	}
	whole := time.Since(began)
	rng := rand.New(rand.NewPCG(1, 2))
	outcomes := map[string]int{}
	for i := range 10 {
		dir := filepath.Join(t.TempDir(), "try")
		copyTree(t, pristine, dir)
		cmd := exec.Command(c.Bin, "device", "encrypt", "--data", dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(float64(whole) * (0.3 + rng.Float64())))
		_ = cmd.Process.Kill()
		_ = cmd.Wait()

		_, readyErr := os.Stat(filepath.Join(dir, encryptReady))
		switch {
		case vault.Exists(dir) || readyErr == nil:
			outcomes["new"]++
			// Past the commit point: `device encrypt` again (or the
			// agent) finishes the move.
			if out, err := exec.Command(c.Bin, "device", "encrypt", "--data", dir).CombinedOutput(); err != nil && !strings.Contains(string(out), "already encrypted") {
				t.Fatalf("try %d: finishing: %v\n%s", i, err, out)
			}
		default:
			outcomes["old"]++
			dev, err := identity.LoadDevice(dir)
			if err != nil {
				t.Fatalf("try %d: killed before the commit point, the old device does not load: %v", i, err)
			}
			opts := store.DefaultOptions(filepath.Join(dir, "store"))
			opts.Self = dev.ID()
			st, err := store.Open(opts)
			if err != nil {
				t.Fatalf("try %d: the old store does not open: %v", i, err)
			}
			held := st.VersionVector().Total()
			_ = st.Close()
			if held != n {
				t.Fatalf("try %d: the old store holds %d ops, want %d", i, held, n)
			}
			if out, err := exec.Command(c.Bin, "device", "encrypt", "--data", dir).CombinedOutput(); err != nil {
				t.Fatalf("try %d: encrypting again: %v\n%s", i, err, out)
			}
		}
		k, err := harness.Unlock(dir)
		if err != nil {
			t.Fatalf("try %d: %v", i, err)
		}
		if _, err := identity.LoadDeviceSealed(dir, k); err != nil {
			t.Fatalf("try %d: %v", i, err)
		}
		opts := store.DefaultOptions(filepath.Join(dir, "store"))
		opts.EncryptionKey = k.StoreKey()
		st, err := store.Open(opts)
		if err != nil {
			t.Fatalf("try %d: the encrypted store does not open: %v", i, err)
		}
		held := st.VersionVector().Total()
		_ = st.Close()
		if held != n {
			t.Fatalf("try %d: the encrypted store holds %d ops, want %d", i, held, n)
		}
		for _, p := range []string{encryptBuilding, encryptReady, encryptOld} {
			if _, err := os.Stat(filepath.Join(dir, p)); err == nil {
				t.Fatalf("try %d: %s left behind", i, p)
			}
		}
	}
	t.Logf("kill -9 over a %v conversion: %v", whole.Round(time.Millisecond), outcomes)

	// The real directory, converted in one go, serves every dossier.
	if out, err := exec.Command(c.Bin, "device", "encrypt", "--data", x.Data, "--json").CombinedOutput(); err != nil {
		t.Fatalf("device encrypt: %v\n%s", err, out)
	}
	if hits := grepTree(t, x.Data, []byte("Thôn ")); len(hits) > 0 {
		t.Fatalf("plain text left after encryption: %v", hits)
	}
	if err := x.Start(); err != nil {
		t.Fatal(err)
	}
	if got := len(ids(t, x)); got != n {
		t.Fatalf("after encryption the agent lists %d dossiers, want %d", got, n)
	}
}

// An authority directory from before encryption at rest is refused with
// the command that encrypts it; once encrypted it provisions devices again
// and holds no key in clear.
func TestAuthorityEncrypt(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "authority")
	a, err := identity.InitAuthority(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(t.TempDir(), "laptop")
	code, _, errOut := cli(t, "device", "init", "--authority", dir, "--name", "laptop", "--data", data)
	if code != exitLocked || !strings.Contains(errOut, "authority encrypt --dir") {
		t.Fatalf("device init on a plain authority: exit %d, %s", code, errOut)
	}
	if code, out, errOut := cli(t, "authority", "encrypt", "--dir", dir); code != 0 || !strings.Contains(out, "1 files sealed") {
		t.Fatalf("authority encrypt: exit %d, %s %s", code, out, errOut)
	}
	if hits := grepTree(t, dir, a.Private.Seed()); len(hits) > 0 {
		t.Fatalf("the authority seed in clear in %v", hits)
	}
	if code, out, errOut := cli(t, "authority", "encrypt", "--dir", dir); code != 0 || !strings.Contains(out, "0 files sealed") {
		t.Fatalf("authority encrypt again: exit %d, %s %s", code, out, errOut)
	}
	good := os.Getenv(EnvAuthorityPassphrase)
	t.Setenv(EnvAuthorityPassphrase, "not the authority passphrase")
	if code, _, _ := cli(t, "device", "init", "--authority", dir, "--name", "laptop", "--data", data); code != exitLocked {
		t.Fatalf("device init with a wrong authority passphrase: exit %d", code)
	}
	t.Setenv(EnvAuthorityPassphrase, good)
	if code, _, errOut := cli(t, "device", "init", "--authority", dir, "--name", "laptop", "--data", data); code != 0 {
		t.Fatalf("device init after authority encrypt: exit %d, %s", code, errOut)
	}
}
