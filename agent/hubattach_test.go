package agent

import (
	"fmt"
	"slices"
	"testing"

	"github.com/fieldsync/fieldsync/agent/store"
)

// A hub's pass often finds several files whole at once; they reach
// PostgreSQL in the transfer's priority order, not in log order: a photo
// attached before the ten fingerprints is exported after them (it used to
// go first, ahead of every fingerprint of the same pass).
func TestExportOrderPutsFingerprintsBeforePhotosOldestFirst(t *testing.T) {
	mo := func(origin string, seq uint64, field string, wall int64) store.ManifestOp {
		return store.ManifestOp{Origin: origin, Seq: seq, Field: field, Wall: wall, Record: "r"}
	}
	// island-a, in log order: a document, the photo, then the ten fingers;
	// island-b's fingerprint is older than all of them but later in the
	// pass (another origin), and one of its fingerprints has island-a's
	// wall time (a tie, broken by origin).
	in := []store.ManifestOp{
		mo("island-a", 6, "attachment.document", 90),
		mo("island-a", 7, "attachment.photo", 100),
	}
	for i, f := range []string{"right_thumb", "right_index", "right_middle", "right_ring", "right_little",
		"left_thumb", "left_index", "left_middle", "left_ring", "left_little"} {
		in = append(in, mo("island-a", uint64(8+i), "attachment.fingerprint."+f, int64(101+i)))
	}
	in = append(in, mo("island-b", 3, "attachment.fingerprint.left_thumb", 50),
		mo("island-b", 4, "attachment.fingerprint.right_thumb", 101),
		mo("island-b", 5, "attachment.photo", 60))
	var got []string
	for _, m := range exportOrder(slices.Clone(in)) {
		got = append(got, fmt.Sprintf("%s:%d", m.Origin, m.Seq))
	}
	want := []string{"island-b:3", "island-a:8", "island-b:4", "island-a:9", "island-a:10", "island-a:11",
		"island-a:12", "island-a:13", "island-a:14", "island-a:15", "island-a:16", "island-a:17",
		"island-b:5", "island-a:7", "island-a:6"}
	if !slices.Equal(got, want) {
		t.Fatalf("export order\n got %v\nwant %v", got, want)
	}
	// The same files in any order come out the same.
	rev := slices.Clone(in)
	slices.Reverse(rev)
	if again := exportOrder(rev); !slices.Equal(again, exportOrder(slices.Clone(in))) {
		t.Fatalf("order depends on the input's order: %v", again)
	}
}
