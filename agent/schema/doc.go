// Package schema owns the dossier schema: which fields a record may have, the
// format of each, how values are normalised, and how untrusted JSON input
// becomes validated field values. It is pure: it does no I/O besides parsing
// the bytes it is given, and the current time comes in as an argument.
//
// # Values
//
// Every value is a string. Before any check, every value is normalised the same
// way (see [Normalize]): Unicode NFC, leading and trailing whitespace trimmed,
// internal runs of whitespace collapsed to one space. Invalid UTF-8 is refused.
// Lengths are counted in characters, meaning Unicode code points after
// normalisation. An empty value (or one that is only whitespace) means "absent":
// a required field cannot be empty, and in an update an empty value clears an
// optional field.
//
// # Field kinds
//
//   - [KindText]: free text of Min..Max characters with no control characters
//     (C0/C1 controls and the bidirectional embedding, override and isolate
//     controls, which can make the admin page show text other than what is
//     stored).
//   - [KindName]: a person's name: letters (any script, including Vietnamese
//     diacritics; combining marks after a letter), spaces, apostrophe, hyphen
//     and dot, with at least one letter. The typographic apostrophe U+2019, which
//     phone keyboards insert, is stored as the ASCII apostrophe.
//   - [KindDate]: "YYYY-MM-DD", a real calendar date, or "YYYY" alone when only
//     the year is known. Min and Max, when non-zero, bound the year; NoFuture
//     refuses dates after the calendar date of the given now, in now's location.
//   - [KindEnum]: one of Enum, compared and stored in lower case NFC.
//   - [KindDigits]: exactly Digits ASCII digits.
//   - [KindPhone]: ASCII digits with an optional leading "+"; spaces, dots and
//     dashes are removed, leaving Min..Max digits. The compact form is stored.
//   - [KindRef]: an opaque reference of Min..Max printable ASCII characters
//     without spaces (whitespace folding would silently alter a reference).
//
// # The default schema
//
// [Dossier] is the Vietnamese citizen enrollment dossier ("hồ sơ"). Required:
// full_name (name, 1..200), date_of_birth (date, years 1900..2100, not in the
// future), sex (enum). The accepted values of sex are exactly
// "nam", "nữ", "khác" (Vietnamese) and "male", "female", "other" (English), in
// any letter case and Unicode normalisation form; they are stored as given,
// folded to lower case NFC: "Nữ" is stored as "nữ", not translated to "female".
// Optional: personal_id (12 digits), ethnicity, commune, permanent_address,
// hometown (text, 1..500), phone (9..15 digits), notes (text, up to 2000; its
// line breaks are folded to spaces like all whitespace), photo_ref and
// fingerprint_ref (references, up to 200). Unknown fields are refused.
//
// Other schemas need no code change: describe them in JSON and load them with
// [LoadSchema]. Field names match ^[a-z][a-z0-9_]{0,63}$; names beginning with
// "_" are reserved for system use and always refused from input.
//
// # Input
//
// [ParseInput] accepts one JSON object whose values are all JSON strings, at most
// [MaxInputBytes] long. Numbers are refused even for personal_id and phone
// (a JSON number would lose leading zeros), as are null, booleans, arrays,
// nested objects, duplicate keys, unpaired surrogate escapes, invalid UTF-8 and
// anything after the object. All of these are [ErrNotObject].
//
// # Errors
//
// Validation reports every bad field at once as [Errors], sorted by field name;
// each [FieldError] names the field and says what is wrong in English with a
// Vietnamese translation beside it, ready to show to an officer.
package schema
