package vault

import "errors"

// Sentinel errors; test with errors.Is. Their text is written for the
// officer who reads it, in Vietnamese and English.
var (
	// ErrWrongPassphrase: the passphrase does not unwrap the data key (or
	// vault.cbor was altered, which looks the same).
	ErrWrongPassphrase = errors.New("sai mật khẩu / wrong passphrase")
	// ErrNoPassphrase: no passphrase was given and none can be asked for.
	ErrNoPassphrase = errors.New("chưa có mật khẩu / no passphrase given")
	// ErrNotFound: there is no vault.cbor in the directory.
	ErrNotFound = errors.New("không có tệp khóa / no vault")
	// ErrExists: a vault already exists where one was to be created.
	ErrExists = errors.New("tệp khóa đã tồn tại / vault already exists")
	// ErrMalformed: vault.cbor cannot be decoded or has fields of the
	// wrong shape.
	ErrMalformed = errors.New("tệp khóa hỏng / vault file damaged")
	// ErrSealed: a sealed file does not open under this key: it was
	// altered, is not a sealed file, belongs to another name, or was sealed
	// by another device's data key.
	ErrSealed = errors.New("tệp mã hóa hỏng hoặc không thuộc máy này / sealed file damaged or not of this device")
)
