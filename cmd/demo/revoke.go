package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fieldsync/fieldsync/agent/api"
	"github.com/fieldsync/fieldsync/cmd/internal/harness"
)

// Step 10: laptop-c, the district mobile team's, is lost on a home visit.
// The admin revokes it on the admin machine, hands the list to the admin
// laptop's agent only, and the rest of the team learns it from each other
// and refuses the lost laptop, which keeps running in a stranger's hands.

// lostLaptop is the laptop lost in step 10.
const lostLaptop = "laptop-c"

// lostReason is the reason the admin gives; every agent shows it.
const lostReason = "rơi mất khi đi thăm nhà / lost on a home visit"

// lostLaptopScene is step 10.
func (t *trip) lostLaptopScene(ctx context.Context) error {
	lost, admin := t.ag[lostLaptop], t.ag[adminName]
	t.n.explain(fmt.Sprintf("Trên đường về từ một buổi thăm nhà, %s bị rơi mất. Máy vẫn bật trong tay người khác: nó còn khóa riêng và chứng nhận còn hạn, nên các máy khác vẫn nhận nó.", lostLaptop),
		fmt.Sprintf("On the way back from a home visit, %s is lost. It is still switched on in someone else's hands: it holds its private key and a valid credential, so the other laptops still admit it.", lostLaptop))
	t.n.explain("Quản trị viên thu hồi máy đó trên máy quản trị, nơi có khóa gốc, không cần mạng.",
		"The admin revokes it on the admin machine, where the authority key is, with no network.")
	file := filepath.Join(t.dir, "thu-hoi-1.cbor")
	if _, err := t.show("authority", "revoke", "--authority", t.c.Authority, "--device", lostLaptop,
		"--reason", lostReason, "--out", file); err != nil {
		return err
	}

	t.n.explain(fmt.Sprintf("Tệp danh sách thu hồi chỉ được trao cho một tác tử: %s, trên chính máy quản trị. Các máy khác nhận nó qua đồng bộ.", adminName),
		fmt.Sprintf("The list file is handed to one agent only: %s's, on the admin machine itself. The others get it through sync.", adminName))
	began := time.Now()
	if _, err := t.show("revoke", "--api", admin.API, file); err != nil {
		return err
	}
	var team []*harness.Agent
	for _, a := range t.running() {
		if a != lost {
			team = append(team, a)
		}
	}
	took, err := t.reach(ctx, began, team, func(ctx context.Context, a *harness.Agent) (bool, string, error) {
		st, err := status(ctx, a)
		if err != nil {
			return false, "", err
		}
		n := uint64(0)
		if st.Revocation != nil {
			n = st.Revocation.Number
		}
		listed := slices.Contains(peerNames(st), lostLaptop)
		return n == 1 && !listed, fmt.Sprintf("%s holds list %d, lists %s: %t", a.Name, n, lostLaptop, listed), nil
	})
	if err != nil {
		return fmt.Errorf("the team did not refuse %s: %w", lostLaptop, err)
	}
	for _, a := range team {
		t.n.result("%s: danh sách số 1, từ chối %s, %s sau lệnh revoke / list 1, refuses %s, %s after the revoke command",
			a.Name, lostLaptop, seconds(took[a.Name]), lostLaptop, seconds(took[a.Name]))
	}
	t.revokedAfter = 0
	for _, d := range took {
		t.revokedAfter = max(t.revokedAfter, d)
	}
	t.revokedBy = len(team)

	if err := t.showStatusJSON(t.ag["laptop-b"]); err != nil {
		return err
	}
	err = waitFor(ctx, t.o.WaitLimit, func(ctx context.Context) (bool, string, error) {
		st, err := status(ctx, lost)
		if err != nil {
			return false, "", err
		}
		peers := connectedPeers(st)
		told := strings.Contains(lost.Log(), "was revoked by the deployment's authority")
		return len(peers) == 0 && told, fmt.Sprintf("%s is connected to %v, told it is revoked: %t", lostLaptop, peers, told), nil
	})
	if err != nil {
		return fmt.Errorf("the lost laptop is still connected: %w", err)
	}
	t.n.result("%s không còn kết nối với máy nào; mỗi lần thử, nó nhận lý do: đã bị thu hồi / is connected to no laptop; each attempt is told why: revoked",
		lostLaptop)
	t.n.explain(fmt.Sprintf("Những gì %s ghi từ nay, nếu có máy nào chưa nhận danh sách mang đi, sẽ bị cách ly ở các máy đã có danh sách: được giữ lại nhưng không gộp (fieldsync quarantine).", lostLaptop),
		fmt.Sprintf("Whatever %s writes from now on, if a laptop without the list carries it, is quarantined on every laptop that has the list: kept, not merged (fieldsync quarantine).", lostLaptop))
	t.n.explain("Hồ sơ trên ổ đĩa của máy bị mất vẫn đọc được: thu hồi không xóa gì từ xa. Hãy mã hóa toàn bộ ổ đĩa mọi máy.",
		"The dossiers on the lost laptop's disk stay readable: revocation erases nothing remotely. Use full-disk encryption on every laptop.")
	return nil
}

// showStatusJSON prints `fieldsync status --json` on a: the revocation list
// in force and the quarantine in full, and the peers' names.
func (t *trip) showStatusJSON(a *harness.Agent) error {
	args := []string{"status", "--api", a.API, "--json"}
	t.n.command(append([]string{t.o.Bin}, args...)...)
	out, err := t.c.Run(args...)
	if err != nil {
		return fmt.Errorf("fieldsync status --json: %w\n%s", err, out)
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(out, &all); err != nil {
		return fmt.Errorf("read status json: %w", err)
	}
	keys := []string{"revocation", "quarantined"}
	part := map[string]json.RawMessage{}
	for _, k := range keys {
		v, ok := all[k]
		if !ok {
			return fmt.Errorf("status json of %s has no %q", a.Name, k)
		}
		part[k] = v
	}
	var st api.Status
	if err := json.Unmarshal(out, &st); err != nil {
		return fmt.Errorf("read status json: %w", err)
	}
	text, err := json.MarshalIndent(part, "", "  ")
	if err != nil {
		return fmt.Errorf("format status json: %w", err)
	}
	t.n.line("(chỉ %s, và tên các máy trong peers / only %s, and the names under peers)", strings.Join(keys, ", "), strings.Join(keys, ", "))
	t.n.block(string(text))
	t.n.block(fmt.Sprintf(`"peers": %s`, strings.Join(peerNames(st), ", ")))
	return nil
}

// peerNames names the peers st lists, connected or not, sorted.
func peerNames(st api.Status) []string {
	var out []string
	for _, p := range st.Peers {
		out = append(out, p.Name)
	}
	slices.Sort(out)
	return out
}
