package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/fieldsync/fieldsync/agent/api"
	"github.com/fieldsync/fieldsync/agent/schema"
)

const putUsage = `fieldsync put [--api HOST:PORT] [--id ID] [--json] FILE|-

Tạo hồ sơ từ tệp JSON, hoặc "-" để đọc từ đầu vào chuẩn; với --id, chỉ sửa các
trường có trong tệp / Create a dossier from a JSON file, or "-" for standard
input; with --id, update only the fields in the file (an empty string clears an
optional field). Prints the dossier's id, or with --json the whole dossier.

The file holds one JSON object of field names to strings, for example:
  {"full_name": "Nguyễn Văn An", "date_of_birth": "1990-05-12", "sex": "nam",
   "personal_id": "001090012345", "commune": "Lũng Cú"}
`

func runPut(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("put", putUsage, stdout)
	addr := apiFlag(fs)
	id := fs.String("id", "", "update the dossier with this id instead of creating one (mã hồ sơ cần sửa)")
	asJSON := fs.Bool("json", false, "print the whole dossier as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{fmt.Errorf("want one FILE, or - for standard input; got %d arguments", fs.NArg())}
	}
	name := fs.Arg(0)
	data, err := readInput(name)
	if err != nil {
		return err
	}
	// Parse here, with the agent's own strict parser, so a malformed file
	// is reported with its position before anything is sent.
	fields, err := schema.ParseInput(data)
	if err != nil {
		return fmt.Errorf("%s: %w", displayFile(name), err)
	}
	c := newClient(fs, *addr)
	var rec api.Record
	if *id != "" {
		rec, err = c.Update(ctx, *id, fields)
	} else {
		rec, err = c.Create(ctx, fields)
	}
	if err != nil {
		return explain(err)
	}
	if *asJSON {
		return writeJSON(stdout, rec)
	}
	_, err = fmt.Fprintln(stdout, rec.ID)
	return err
}

// readInput reads the named file, or standard input for "-", refusing more
// than the agent would accept.
func readInput(name string) ([]byte, error) {
	var r io.Reader
	if name == "-" {
		r = stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, schema.MaxInputBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", displayFile(name), err)
	}
	if len(data) > schema.MaxInputBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes (tệp quá lớn)", displayFile(name), schema.MaxInputBytes)
	}
	return data, nil
}

func displayFile(name string) string {
	if name == "-" {
		return "standard input"
	}
	return name
}
