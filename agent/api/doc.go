// Package api owns the agent's local HTTP JSON API, the integration point for
// enrollment software and what the fieldsync CLI talks to, and its Go client.
//
// The server validates every input against a [schema.Schema] before the
// [Backend] sees it: a Backend receives only normalised, schema-valid fields.
// The wire types ([Record], [Value], [Status], [Peer]) are a contract with
// other programs; their JSON names never change. docs/api.md describes the
// endpoints, the error shape and how enrollment software integrates.
//
// # Security
//
// The API has no authentication of its own: it is meant to listen on
// loopback, where only programs on the laptop reach it. Two browser attacks
// still reach loopback, and the server refuses both when its address is a
// loopback address:
//
//   - DNS rebinding: a web page whose host name re-resolves to 127.0.0.1 sends
//     requests that carry the attacker's name in the Host header. Requests
//     whose Host is not a loopback name or address get 403.
//   - Cross-site requests: a web page may POST to 127.0.0.1 without reading the
//     answer. Bodies with a Content-Type other than JSON get 415 (HTML forms
//     cannot send JSON), and requests carrying an Origin header that is not a
//     loopback origin get 403 (browsers send Origin on every cross-origin POST,
//     including bodies sent with no Content-Type).
//
// # Personal data
//
// Field values are citizens' personal data. The server never logs them, nor
// the request bodies or validation messages that could quote them; it logs
// the method, route, status and duration of each request, and the cause of
// internal errors.
package api
