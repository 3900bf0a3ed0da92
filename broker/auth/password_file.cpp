// Password file parsing, verification and the atomic single-user rewrite; see
// password_file.hpp. Lines are classified once (ClassifyLine) and both the
// parser and SetPassword use that, so `zguard passwd` finds a user exactly
// where the broker would.
#include "broker/auth/password_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include <sodium.h>

namespace zguard::auth {
namespace {

constexpr std::string_view kArgon2idPrefix = "$argon2id$";
constexpr std::string_view kRoleCharacters = "[A-Za-z0-9_.-]+";

bool SodiumReady() {
  static const bool ready = sodium_init() >= 0;  // idempotent; the static makes it once
  return ready;
}

bool IsBlank(char c) { return c == ' ' || c == '\t'; }

std::string_view TrimLeft(std::string_view text) {
  while (!text.empty() && IsBlank(text.front())) text.remove_prefix(1);
  return text;
}

std::string_view TrimRight(std::string_view text) {
  while (!text.empty() && IsBlank(text.back())) text.remove_suffix(1);
  return text;
}

bool StartsWith(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

std::string Quote(std::string_view text) {
  std::string out = "\"";
  out.append(text);
  out += '"';
  return out;
}

// Calls f(line_number, raw_line) for each line; raw_line keeps its '\n' (and
// any '\r' before it), so concatenating every raw_line gives `text` back.
template <typename F>
void ForEachLine(std::string_view text, F&& f) {
  int number = 0;
  while (!text.empty()) {
    const std::size_t newline = text.find('\n');
    const std::size_t length = newline == std::string_view::npos ? text.size() : newline + 1;
    f(++number, text.substr(0, length));
    text.remove_prefix(length);
  }
}

enum class LineKind { kSkip, kHashed, kPlaintext, kNoSeparator };

// One line taken apart; the views point into the line.
struct Fields {
  LineKind kind = LineKind::kSkip;
  std::string_view user;
  std::string_view secret;  // the hash, or the plaintext password
  std::string_view roles;   // after the hash's ':', when there is one
};

Fields ClassifyLine(std::string_view raw) {
  Fields fields;
  std::string_view line = raw;
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  line = TrimLeft(line);
  if (line.empty() || line.front() == '#') return fields;

  const std::size_t colon = line.find(':');
  const std::size_t equals = line.find('=');
  if (colon == std::string_view::npos && equals == std::string_view::npos) {
    fields.kind = LineKind::kNoSeparator;
    return fields;
  }
  // '=' first means `user=password`, unless an argon2id hash follows a later
  // ':', which is a hashed line whose user name has an '=' in it.
  const bool equals_first = equals < colon;  // npos is the largest size_t
  if (equals_first &&
      !(colon != std::string_view::npos && StartsWith(line.substr(colon + 1), kArgon2idPrefix))) {
    fields.kind = LineKind::kPlaintext;
    fields.user = line.substr(0, equals);
    fields.secret = line.substr(equals + 1);  // byte for byte, as CZMQ reads it
    return fields;
  }
  fields.kind = LineKind::kHashed;
  fields.user = line.substr(0, colon);
  const std::string_view rest = TrimRight(line.substr(colon + 1));
  const std::size_t roles_colon = rest.find(':');
  fields.secret = rest.substr(0, roles_colon);
  if (roles_colon != std::string_view::npos) fields.roles = rest.substr(roles_colon + 1);
  return fields;
}

// Why `user` cannot be a user name, or nullptr. Describes, never quotes: a
// malformed line's "user name" may well be somebody's password.
const char* UserNameProblem(std::string_view user) {
  if (user.empty()) return "empty user name";
  for (const char c : user) {
    if (c == ':') return "user name contains ':'";
    if (c == '=') return "user name contains '='";
    const auto byte = static_cast<unsigned char>(c);
    if (byte <= 0x20 || byte == 0x7f) return "user name contains whitespace or a control character";
  }
  return nullptr;
}

bool IsRoleName(std::string_view role) {
  return !role.empty() && std::all_of(role.begin(), role.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

// `who` names the user: `user "alice"`.
std::string RoleProblem(std::string_view role, std::string_view who) {
  if (role.empty()) return "empty role name for " + std::string(who);
  const bool printable = std::all_of(role.begin(), role.end(),
                                     [](char c) { return c >= 0x20 && c < 0x7f && c != '"'; });
  return (printable ? "role " + Quote(role) : std::string("a role")) + " for " + std::string(who) +
         " is not valid (roles are " + std::string(kRoleCharacters) + ")";
}

// Splits "a,b" into roles; "" is no roles. Problems are appended to `problems`.
std::vector<std::string> SplitRoles(std::string_view text, std::string_view who,
                                    std::vector<std::string>* problems) {
  std::vector<std::string> roles;
  if (text.empty()) return roles;
  while (true) {
    const std::size_t comma = text.find(',');
    const std::string_view role = text.substr(0, comma);
    if (IsRoleName(role)) {
      roles.emplace_back(role);
    } else {
      problems->push_back(RoleProblem(role, who));
    }
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return roles;
}

// Why `hash` is not a usable argon2id string, or an empty string. Never
// quotes it: someone may have put a plain password where the hash goes.
std::string HashProblem(const std::string& hash, std::string_view who) {
  if (!StartsWith(hash, kArgon2idPrefix)) {
    return "password for " + std::string(who) + " is not an argon2id hash (it must start with \"" +
           std::string(kArgon2idPrefix) + "\"; make one with `zguard passwd`, or for a plain " +
           "password write `user=password` and set " + std::string(kAllowPlaintextOption) +
           ": true)";
  }
  const bool printable =
      std::all_of(hash.begin(), hash.end(), [](char c) { return c > 0x20 && c < 0x7f; });
  // needs_rehash decodes the string without hashing: -1 means it does not parse.
  if (hash.size() >= crypto_pwhash_STRBYTES || !printable || !SodiumReady() ||
      crypto_pwhash_str_needs_rehash(hash.c_str(), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                                     crypto_pwhash_MEMLIMIT_INTERACTIVE) == -1) {
    return "argon2id hash for " + std::string(who) + " is malformed";
  }
  return {};
}

void Wipe(std::string& secret) {
  if (!secret.empty()) sodium_memzero(secret.data(), secret.size());
}

// Reads a regular file of at most kMaxPasswordFileSize bytes into *contents.
// Returns an error message; *missing is set when the file does not exist.
std::optional<std::string> ReadSmallFile(const std::string& path, std::string* contents,
                                         mode_t* mode, bool* missing) {
  *missing = false;
  // O_NONBLOCK: opening a FIFO by mistake must not hang start-up.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    *missing = errno == ENOENT;
    return "cannot open " + path + ": " + std::strerror(errno);
  }
  struct stat info {};
  std::optional<std::string> error;
  if (::fstat(fd, &info) != 0) {
    error = "cannot stat " + path + ": " + std::strerror(errno);
  } else if (!S_ISREG(info.st_mode)) {
    error = path + " is not a regular file";
  } else if (static_cast<std::uint64_t>(info.st_size) > kMaxPasswordFileSize) {
    error = path + " is " + std::to_string(info.st_size) + " bytes; password files are limited " +
            "to " + std::to_string(kMaxPasswordFileSize) + " bytes (4 MiB)";
  } else {
    *mode = info.st_mode;
    contents->assign(static_cast<std::size_t>(info.st_size), '\0');
    std::size_t done = 0;
    while (done < contents->size()) {
      const ssize_t n = ::read(fd, contents->data() + done, contents->size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        error = "cannot read " + path + ": " + std::strerror(errno);
        break;
      }
      if (n == 0) break;  // the file shrank since fstat
      done += static_cast<std::size_t>(n);
    }
    contents->resize(done);
  }
  ::close(fd);
  return error;
}

// Writes `contents` to a new 0600 file next to `path` and renames it over `path`.
std::optional<std::string> ReplaceFile(const std::string& path, std::string_view contents) {
  std::string temp = path + ".tmp.XXXXXX";
  const int fd = ::mkstemp(temp.data());  // mkstemp creates with mode 0600
  if (fd < 0) {
    return "cannot create a temporary file next to " + path + ": " + std::strerror(errno);
  }
  std::optional<std::string> error;
  if (::fchmod(fd, S_IRUSR | S_IWUSR) != 0) {
    error = "cannot set mode 0600 on " + temp + ": " + std::strerror(errno);
  }
  // Keep the owner of an existing file (root editing the broker's file must
  // not take it away from the broker's user).
  struct stat existing {};
  if (!error && ::stat(path.c_str(), &existing) == 0 &&
      ::fchown(fd, existing.st_uid, existing.st_gid) != 0 && errno != EPERM) {
    error = "cannot keep the owner of " + path + ": " + std::strerror(errno);
  }
  std::size_t done = 0;
  while (!error && done < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = "cannot write " + temp + ": " + std::strerror(errno);
    } else {
      done += static_cast<std::size_t>(n);
    }
  }
  if (!error && ::fsync(fd) != 0) error = "cannot sync " + temp + ": " + std::strerror(errno);
  if (::close(fd) != 0 && !error) error = "cannot close " + temp + ": " + std::strerror(errno);
  if (!error && ::rename(temp.c_str(), path.c_str()) != 0) {
    error = "cannot rename " + temp + " to " + path + ": " + std::strerror(errno);
  }
  if (error) {
    ::unlink(temp.c_str());
    return error;
  }
  // Make the rename itself durable. Best effort: the new file is complete and
  // in place either way, so a failure here is not worth reporting.
  const std::size_t slash = path.rfind('/');
  const std::string directory =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const int dir_fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  return std::nullopt;
}

std::string JoinRoles(const std::vector<std::string>& roles) {
  std::string out;
  for (const auto& role : roles) {
    if (!out.empty()) out += ',';
    out += role;
  }
  return out;
}

}  // namespace

PasswordFile ParsePasswordFile(std::string_view text, bool allow_plaintext) {
  PasswordFile file;
  std::map<std::string, int, std::less<>> first_line;  // every user seen, valid line or not
  ForEachLine(text, [&](int number, std::string_view raw) {
    const Fields fields = ClassifyLine(raw);
    if (fields.kind == LineKind::kSkip) return;
    const auto error = [&](std::string message) {
      file.errors.push_back({number, std::move(message)});
    };
    if (fields.kind == LineKind::kNoSeparator) {
      error(allow_plaintext ? "expected `user:HASH[:roles]` or `user=password`"
                            : "expected `user:HASH[:roles]`");
      return;
    }
    const std::size_t errors_before = file.errors.size();
    if (const char* problem = UserNameProblem(fields.user)) {
      error(problem);
    } else if (auto [seen, inserted] = first_line.try_emplace(std::string(fields.user), number);
               !inserted) {
      error("user " + Quote(fields.user) + " is already defined on line " +
            std::to_string(seen->second));
    }
    // Past this point the user is only named if the name is valid.
    const std::string who = UserNameProblem(fields.user) != nullptr
                                ? std::string("the user on this line")
                                : "user " + Quote(fields.user);

    std::vector<std::string> roles;
    if (fields.kind == LineKind::kPlaintext) {
      if (!allow_plaintext) {
        error("plaintext password for " + who + "; set " + std::string(kAllowPlaintextOption) +
              ": true to accept `user=password` lines, or hash it with `zguard passwd`");
      } else if (fields.secret.empty()) {
        error("empty password for " + who);
      }
    } else {
      std::string hash(fields.secret);
      std::string problem = HashProblem(hash, who);
      if (!problem.empty()) error(std::move(problem));
      std::vector<std::string> role_problems;
      roles = SplitRoles(fields.roles, who, &role_problems);
      for (auto& role_problem : role_problems) error(std::move(role_problem));
    }
    if (file.errors.size() != errors_before) return;

    // Filled in place so that no stray copy of a plaintext password is left behind.
    PasswordEntry& entry = file.users[std::string(fields.user)];
    entry.user = std::string(fields.user);
    entry.hash.assign(fields.secret);
    entry.roles = std::move(roles);
    entry.plaintext = fields.kind == LineKind::kPlaintext;
    entry.line = number;
    if (entry.plaintext) {
      file.warnings.push_back(
          {number, "plaintext password for " + who + "; hash it with `zguard passwd`"});
    }
  });
  return file;
}

PasswordFile LoadPasswordFile(const std::string& path, bool allow_plaintext) {
  std::string contents;
  mode_t mode = 0;
  bool missing = false;
  if (auto error = ReadSmallFile(path, &contents, &mode, &missing)) {
    PasswordFile file;
    file.errors.push_back({0, std::move(*error)});
    return file;
  }
  PasswordFile file = ParsePasswordFile(contents, allow_plaintext);
  Wipe(contents);  // it may hold plaintext passwords
  if ((mode & (S_IRWXG | S_IRWXO)) != 0) {
    char octal[8];
    std::snprintf(octal, sizeof octal, "%04o", static_cast<unsigned>(mode & 07777));
    file.warnings.insert(file.warnings.begin(),
                         PasswordProblem{0, path + " is open to group or others (mode " + octal +
                                                "); `chmod 600` it"});
  }
  return file;
}

bool VerifyPassword(const PasswordEntry& entry, std::string_view password) {
  const std::string& stored = entry.hash;
  if (stored.empty()) return false;
  if (!entry.plaintext) {
    if (!StartsWith(stored, kArgon2idPrefix) || !SodiumReady()) return false;
    const char* bytes = password.empty() ? "" : password.data();
    return crypto_pwhash_str_verify(stored.c_str(), bytes, password.size()) == 0;
  }
  // Always compare stored.size() bytes, against the stored password itself
  // when the lengths differ, so the time says nothing about the content.
  const bool same_length = password.size() == stored.size();
  const char* other = same_length ? password.data() : stored.data();
  const bool same_bytes = sodium_memcmp(stored.data(), other, stored.size()) == 0;
  return same_length && same_bytes;
}

std::optional<std::string> HashPassword(std::string_view password) {
  if (!SodiumReady()) return std::nullopt;
  char out[crypto_pwhash_STRBYTES];
  const char* bytes = password.empty() ? "" : password.data();
  if (crypto_pwhash_str(out, bytes, password.size(), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                        crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
    return std::nullopt;
  }
  std::string hash(out);
  sodium_memzero(out, sizeof out);
  return hash;
}

std::optional<std::string> SetPassword(const std::string& path, std::string_view user,
                                       std::string_view password,
                                       const std::optional<std::vector<std::string>>& roles) {
  if (const char* problem = UserNameProblem(user)) return std::string(problem);
  if (password.empty()) return "empty password for user " + Quote(user);
  if (roles) {
    for (const auto& role : *roles) {
      if (!IsRoleName(role)) return RoleProblem(role, "user " + Quote(user));
    }
  }

  std::string contents;
  mode_t mode = 0;
  bool missing = false;
  if (auto error = ReadSmallFile(path, &contents, &mode, &missing); error && !missing) {
    return error;
  }
  std::optional<std::string> hash = HashPassword(password);
  if (!hash) {
    Wipe(contents);
    return std::string("hashing the password failed (out of memory?)");
  }

  const std::string new_roles = roles ? JoinRoles(*roles) : std::string();
  std::string out;
  // Reserved up front: growing would leave copies of other users' plaintext
  // passwords in freed memory.
  out.reserve(contents.size() + user.size() + hash->size() + new_roles.size() + 256);
  bool replaced = false;
  ForEachLine(contents, [&](int /*number*/, std::string_view raw) {
    const Fields fields = ClassifyLine(raw);
    const bool ours = (fields.kind == LineKind::kHashed || fields.kind == LineKind::kPlaintext) &&
                      fields.user == user;
    if (!ours) {
      out.append(raw);
      return;
    }
    if (replaced) return;  // a later duplicate of the same user: dropped
    replaced = true;
    const std::string_view kept_roles = roles ? std::string_view(new_roles)
                                        : fields.kind == LineKind::kHashed ? fields.roles
                                                                           : std::string_view();
    out.append(user).append(":").append(*hash);
    if (!kept_roles.empty()) out.append(":").append(kept_roles);
    if (raw.size() >= 2 && raw.substr(raw.size() - 2) == "\r\n") {
      out.append("\r\n");
    } else if (!raw.empty() && raw.back() == '\n') {
      out.append("\n");
    }
  });
  if (!replaced) {
    if (!out.empty() && out.back() != '\n') out += '\n';
    out.append(user).append(":").append(*hash);
    if (!new_roles.empty()) out.append(":").append(new_roles);
    out += '\n';
  }
  Wipe(contents);
  std::optional<std::string> error = ReplaceFile(path, out);
  Wipe(out);
  Wipe(*hash);
  return error;
}

}  // namespace zguard::auth
