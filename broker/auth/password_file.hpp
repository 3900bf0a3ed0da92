// The PLAIN-mechanism password file: parsing it (with every problem collected
// and located by line), checking a password against an entry, and the one
// writer, `zguard passwd`, which replaces a single user's line atomically.
//
// Format, one user per line:
//   username:$argon2id$v=19$m=...,t=...,p=...$SALT$HASH[:role1,role2]
// Blank lines and lines whose first non-blank character is '#' are ignored;
// leading blanks and trailing blanks and '\r' are not part of a hashed line.
// With allow_plaintext, CZMQ's `username=password` lines are also accepted
// (each with a warning); there the password is everything after the first
// '=', byte for byte up to the end of the line (less a trailing '\r').
// A line is of the `=` kind when its first '=' comes before its first ':'.
//
// Secrecy: no message returned here, error or warning, contains a password
// or hash, or any text that might be one (an invalid user name is described,
// not quoted). Copies of secrets made here are wiped with sodium_memzero.
// All functions may be called from any thread; they share no state.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace zguard::auth {

// The config key that enables plaintext lines, as named in messages.
inline constexpr std::string_view kAllowPlaintextOption = "allow_plaintext_passwords";

// Files larger than this are refused by LoadPasswordFile and SetPassword.
inline constexpr std::size_t kMaxPasswordFileSize = std::size_t{4} << 20;  // 4 MiB

struct PasswordEntry {
  std::string user;
  std::string hash;  // argon2id string from crypto_pwhash_str, or the plain password
  std::vector<std::string> roles;
  bool plaintext = false;
  int line = 0;  // where the entry is defined, for messages
};

struct PasswordProblem {
  int line = 0;  // 1-based; 0 for the file as a whole
  std::string message;
};

struct PasswordFile {
  std::map<std::string, PasswordEntry, std::less<>> users;  // the valid entries
  std::vector<PasswordProblem> errors;                      // the file is refused when non-empty
  std::vector<PasswordProblem> warnings;                    // e.g. plaintext entries accepted
};

// Parses a password file's text. Never throws on any input. Every problem is
// reported, not only the first; `users` holds the entries that were valid
// (the first one, for a duplicated user), but a caller must refuse the whole
// file when `errors` is non-empty. Errors: no separator, empty user name,
// user name with ':', '=', whitespace or control characters, duplicate user,
// a hash that is not a well-formed argon2id string, a plaintext line without
// allow_plaintext, an empty plaintext password, a bad role name (roles are
// [A-Za-z0-9_.-]+).
PasswordFile ParsePasswordFile(std::string_view text, bool allow_plaintext);

// Reads and parses the file at `path`. A file that cannot be read, is not a
// regular file, or is larger than kMaxPasswordFileSize is one error at line 0.
// A file readable by group or others gets a warning at line 0.
PasswordFile LoadPasswordFile(const std::string& path, bool allow_plaintext);

// True if `password` is the entry's password: crypto_pwhash_str_verify for
// hashed entries (about 0.1 s of CPU and 64 MiB of memory with the default
// cost), a constant-time compare for plaintext ones (time depends only on the
// stored password's length). False for an entry with an empty hash.
bool VerifyPassword(const PasswordEntry& entry, std::string_view password);

// crypto_pwhash_str (argon2id) with OPSLIMIT_INTERACTIVE/MEMLIMIT_INTERACTIVE.
// std::nullopt on failure (out of memory, or libsodium failed to start).
std::optional<std::string> HashPassword(std::string_view password);

// For `zguard passwd FILE USER`: sets USER's password in the file at `path`,
// creating the file if it is missing. USER's line (its first one; any later
// duplicates are dropped) is replaced by `user:HASH[:roles]`, keeping the
// roles it had unless `roles` is given (a plaintext line had none); a new
// user is appended. Every other line, comments included, is kept byte for
// byte. The result is written to a temporary file in the same directory with
// mode 0600, synced, and renamed over `path`, so readers see the old file or
// the new one, never a mix. Returns an error message, or std::nullopt.
std::optional<std::string> SetPassword(const std::string& path, std::string_view user,
                                       std::string_view password,
                                       const std::optional<std::vector<std::string>>& roles);

}  // namespace zguard::auth
