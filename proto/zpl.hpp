// CURVE certificates in the ZeroMQ Property Language (ZPL, ZeroMQ RFC 4): reading them as CZMQ's
// zcert, pyzmq's zmq.auth and zguard write them, writing them, and checking that secret key files
// are private. Certificate files come from outside the process, so nothing here throws or asserts
// on their contents: every problem comes back as a line number and a reason. Secret key material
// never appears in an error message, and bytes decoded from it are wiped after use.
//
// Every function is reentrant and may be called from any thread. Functions that touch the file
// system do so only through the paths they are given.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace zguard::proto {

// A CURVE certificate as CZMQ's zcert, pyzmq's zmq.auth and zguard write them (ZPL, RFC 4).
struct Certificate {
  std::string public_key;  // Z85, 40 characters
  std::string secret_key;  // Z85, 40 characters; empty in a public certificate
  std::vector<std::pair<std::string, std::string>> metadata;  // file order
  // Value of metadata `key`, or "" when absent.
  std::string Meta(std::string_view key) const;
};

struct CertificateResult {
  std::optional<Certificate> certificate;  // set on success
  int line = 0;                            // 1-based line of the problem, 0 if none/whole file
  std::string error;                       // empty on success
};

// Parses the text of one certificate file. Requires a `curve` section with a valid
// `public-key`; `secret-key` optional (must be valid when present, and must match the public key:
// check with crypto_scalarmult_base from libsodium after zmq_z85_decode); `metadata` section
// optional.
//
// The ZPL accepted: lines end in LF, CRLF or CR; blank lines and lines whose first non-space
// character is `#` are ignored. A line is `name` (opens a section) or `name = value`, optionally
// followed by whitespace and a `# comment`. Names use [A-Za-z0-9] and `$ - _ @ . & + /`, at most
// 255 bytes. A value is double-quoted, single-quoted (the quotes are not part of it; it cannot
// contain its own quote) or bare (ends at the first space or tab); it is at most 1024 bytes and
// holds no control characters. Nesting is by leading spaces: CZMQ uses 4 per level, but any
// consistent positive indentation is accepted; a tab in the indentation is an error.
//
// What is read: level-1 properties of the top-level `curve` section (`public-key`, `secret-key`;
// other names ignored) and of `metadata` (every `name = value`, in file order; a name may appear
// once). Both sections may be repeated, they merge. Deeper nesting under either is an error;
// other top-level sections are ignored whatever they hold. Texts over 64 KiB are refused.
CertificateResult ParseCertificate(std::string_view text);

// Reads and parses a file; errors name no path (the caller adds it). Refuses files over 64 KiB and
// anything that is not a regular file. Does not check permissions: see CheckSecretFilePermissions.
CertificateResult LoadCertificateFile(const std::string& path);

// ZPL text as zguard writes it: header comments, `metadata` section (values double-quoted), `curve`
// section with public-key, and secret-key only when `with_secret`.
//
// A metadata value containing `"` is single-quoted instead. The text only parses back when every
// metadata name is a valid ZPL name and every value is within the limits ParseCertificate states
// (at most 1024 bytes, no control characters, not both quote characters); WriteCertificatePair
// checks this, FormatCertificate does not. With `with_secret`, the caller owns a copy of the
// secret key in the returned string and should wipe it (sodium_memzero) when done.
std::string FormatCertificate(const Certificate& certificate, bool with_secret);

// A fresh keypair from zmq_curve_keypair; metadata empty. Both keys are empty if libzmq was built
// without CURVE support (zmq_has("curve") is false).
Certificate GenerateCertificate();

// True for a 40-character Z85 string that decodes to 32 bytes.
bool IsZ85Key(std::string_view text);

// Writes DIR/NAME.key (public, mode 0644) and DIR/NAME.key_secret (secret, mode 0600, created with
// that mode — never world-readable even briefly; refuse to overwrite existing files). Returns an
// error message or std::nullopt.
//
// `dir` must exist. `name` must be a plain file name (no `/`, not `.` or `..`). The certificate
// must hold a valid keypair and metadata that parses back (see FormatCertificate); otherwise
// nothing is written. The modes are exact whatever the umask. If only one file could be written,
// it is removed again before returning the error.
std::optional<std::string> WriteCertificatePair(const std::string& dir, const std::string& name,
                                                const Certificate& certificate);

// For a secret key file: std::nullopt when it is a regular file readable by its owner only (no
// group/other permission bits; a file owned by root may also be readable by its group, as
// Kubernetes mounts Secrets with fsGroup); otherwise a message that names the path, the current
// mode in octal, and the fix, e.g. "run: chmod 600 PATH". Symbolic links are followed: the mode
// checked is that of the file that would be read.
std::optional<std::string> CheckSecretFilePermissions(const std::string& path);

}  // namespace zguard::proto
