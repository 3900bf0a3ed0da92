// Reading, writing and permission-checking ZPL certificate files. See zpl.hpp for the contracts
// and the subset of ZPL (RFC 4) that is accepted.
#include "zpl.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <system_error>

namespace zguard::proto {
namespace {

constexpr std::size_t kMaxFileBytes = std::size_t{64} * 1024;
constexpr std::size_t kMaxNameBytes = 255;  // the ZMTP limit for a metadata name
constexpr std::size_t kMaxValueBytes = 1024;
constexpr std::size_t kKeyChars = 40;
constexpr std::size_t kKeyBytes = 32;
constexpr std::string_view kZ85Alphabet =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";

using Key = std::array<std::uint8_t, kKeyBytes>;

std::string ErrnoMessage(int error) {
  return std::error_code(error, std::generic_category()).message();
}

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

bool IsNameChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("$-_@.&+/").find(c) != std::string_view::npos;
}

bool IsValidName(std::string_view name) {
  return !name.empty() && name.size() <= kMaxNameBytes &&
         std::all_of(name.begin(), name.end(), IsNameChar);
}

// Why `value` cannot be a ZPL value, or nullptr. Bytes >= 0x80 are allowed so that metadata may
// carry UTF-8.
const char* ValueProblem(std::string_view value) {
  if (value.size() > kMaxValueBytes) return "value is longer than 1024 bytes";
  for (const char c : value) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7F) return "value contains a control character";
  }
  return nullptr;
}

// A character for an error message; never more than one byte of the input.
std::string Describe(char c) {
  const auto byte = static_cast<unsigned char>(c);
  if (byte > 0x20 && byte < 0x7F) return std::string("'") + c + "'";
  if (c == ' ') return "a space";
  std::array<char, 16> hex{};
  std::snprintf(hex.data(), hex.size(), "byte 0x%02X", byte);
  return hex.data();
}

// Why `text` is not a Z85-encoded 32-byte key, or std::nullopt. The message names positions only,
// never characters, because `text` may be a secret key. Checking here, before zmq_z85_decode, keeps
// libzmq away from lengths that are not a multiple of 5 and from 5-character groups that encode
// more than 32 bits.
std::optional<std::string> Z85KeyProblem(std::string_view text) {
  const std::string prefix = "is not a 40-character Z85 key";
  if (text.size() != kKeyChars) {
    return prefix + " (it has " + std::to_string(text.size()) + " characters)";
  }
  for (std::size_t group = 0; group < kKeyChars; group += 5) {
    std::uint64_t value = 0;
    for (std::size_t i = group; i < group + 5; ++i) {
      const auto digit = kZ85Alphabet.find(text[i]);
      if (text[i] == '\0' || digit == std::string_view::npos) {
        return prefix + " (character " + std::to_string(i + 1) + " is not in the Z85 alphabet)";
      }
      value = value * 85 + digit;
    }
    if (value > 0xFFFFFFFFULL) {
      return prefix + " (characters " + std::to_string(group + 1) + "-" +
             std::to_string(group + 5) + " encode more than 32 bits)";
    }
  }
  return std::nullopt;
}

// Decodes a key that passed Z85KeyProblem. The NUL-terminated copy libzmq needs is wiped.
bool DecodeKey(std::string_view text, Key& out) {
  if (text.size() != kKeyChars) return false;
  std::array<char, kKeyChars + 1> terminated{};
  std::memcpy(terminated.data(), text.data(), kKeyChars);
  const bool ok = zmq_z85_decode(out.data(), terminated.data()) != nullptr;
  sodium_memzero(terminated.data(), terminated.size());
  return ok;
}

bool SodiumReady() {
  static const bool ready = sodium_init() >= 0;  // thread-safe, and sodium_init is idempotent
  return ready;
}

// Why `secret_z85` does not belong to `public_z85`, or std::nullopt. Both must have passed
// Z85KeyProblem. Every buffer that held secret bytes is wiped before returning.
std::optional<std::string> KeypairProblem(std::string_view public_z85,
                                          std::string_view secret_z85) {
  if (!SodiumReady()) return "libsodium could not be initialised";
  Key public_bytes{};
  Key secret_bytes{};
  Key derived{};
  std::optional<std::string> problem;
  if (!DecodeKey(public_z85, public_bytes)) {
    problem = "public-key could not be decoded";
  } else if (!DecodeKey(secret_z85, secret_bytes)) {
    problem = "secret-key could not be decoded";
  } else if (crypto_scalarmult_base(derived.data(), secret_bytes.data()) != 0 ||
             sodium_memcmp(derived.data(), public_bytes.data(), kKeyBytes) != 0) {
    problem = "secret-key does not match public-key";
  }
  sodium_memzero(secret_bytes.data(), secret_bytes.size());
  sodium_memzero(derived.data(), derived.size());
  return problem;
}

CertificateResult Fail(int line, std::string message) {
  CertificateResult result;
  result.line = line;
  result.error = std::move(message);
  return result;
}

// One non-blank, non-comment line split into its parts. Views point into the parsed text.
struct Property {
  std::string_view name;
  bool has_value = false;
  std::string_view value;
  bool comment_for_value = false;  // `name = #...`: the `#` began a comment, the value is empty
};

// Splits `rest` (a line without its indentation and trailing whitespace) into a property.
// Returns the reason on failure.
std::optional<std::string> SplitProperty(std::string_view rest, Property& out) {
  std::size_t i = 0;
  while (i < rest.size() && IsNameChar(rest[i])) ++i;
  if (i == 0) return "expected a property name, found " + Describe(rest[0]);
  out.name = rest.substr(0, i);
  if (out.name.size() > kMaxNameBytes) return std::string("name is longer than 255 bytes");
  std::size_t j = i;
  while (j < rest.size() && IsSpace(rest[j])) ++j;
  if (j == rest.size() || (rest[j] == '#' && j > i)) return std::nullopt;  // a section
  if (rest[j] != '=') {
    return "expected '=' after '" + std::string(out.name) + "', found " + Describe(rest[j]);
  }
  out.has_value = true;
  ++j;
  while (j < rest.size() && IsSpace(rest[j])) ++j;
  std::size_t k = j;
  if (j == rest.size() || rest[j] == '#') {
    out.value = {};  // `name =` and `name = # comment` both give an empty value
    out.comment_for_value = j < rest.size();
    return std::nullopt;
  }
  if (rest[j] == '"' || rest[j] == '\'') {
    const char quote = rest[j];
    const auto close = rest.find(quote, j + 1);
    if (close == std::string_view::npos) {
      return std::string("unterminated quoted value (no closing ") + quote + ")";
    }
    out.value = rest.substr(j + 1, close - j - 1);
    k = close + 1;
    if (k < rest.size() && !IsSpace(rest[k])) {
      return "unexpected " + Describe(rest[k]) + " after the closing quote";
    }
  } else {
    while (k < rest.size() && !IsSpace(rest[k])) ++k;
    out.value = rest.substr(j, k - j);
  }
  while (k < rest.size() && IsSpace(rest[k])) ++k;
  if (k < rest.size() && rest[k] != '#') {
    return "unexpected " + Describe(rest[k]) +
           " after the value (quote a value that contains spaces; start comments with #)";
  }
  if (const char* problem = ValueProblem(out.value)) return std::string(problem);
  return std::nullopt;
}

// Why `certificate` cannot be written so that it parses back, or std::nullopt.
std::optional<std::string> WritableProblem(const Certificate& certificate) {
  if (auto problem = Z85KeyProblem(certificate.public_key)) return "public key " + *problem;
  if (certificate.secret_key.empty()) return std::string("certificate has no secret key");
  if (auto problem = Z85KeyProblem(certificate.secret_key)) return "secret key " + *problem;
  if (auto problem = KeypairProblem(certificate.public_key, certificate.secret_key)) {
    return problem;
  }
  std::map<std::string_view, std::size_t> seen;
  for (std::size_t i = 0; i < certificate.metadata.size(); ++i) {
    const auto& [name, value] = certificate.metadata[i];
    std::string entry = "metadata entry " + std::to_string(i + 1);
    if (!IsValidName(name)) {
      return entry.append(" has an invalid name (1-255 bytes of A-Z a-z 0-9 $ - _ @ . & + /)");
    }
    entry.append(" '").append(name).append("'");
    if (!seen.emplace(name, i).second) return entry.append(" is repeated");
    if (const char* problem = ValueProblem(value)) return entry.append(": ").append(problem);
    if (value.find('"') != std::string::npos && value.find('\'') != std::string::npos) {
      return entry.append(": value contains both quote characters");
    }
  }
  return std::nullopt;
}

// Creates `path` with exactly `mode` (O_EXCL: never replaces a file) and writes `contents`. The
// file is created with `mode`, so it is never more open than that; the umask can only narrow it,
// and fchmod restores the exact mode. On failure nothing is left behind.
std::optional<std::string> WriteNewFile(const std::string& path, std::string_view contents,
                                        mode_t mode) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    const int error = errno;
    if (error == EEXIST) return path + " already exists; refusing to overwrite it";
    return "cannot create " + path + ": " + ErrnoMessage(error);
  }
  std::optional<std::string> problem;
  if (fchmod(fd, mode) != 0)
    problem = "cannot set the mode of " + path + ": " + ErrnoMessage(errno);
  std::size_t written = 0;
  while (!problem && written < contents.size()) {
    const ssize_t n = write(fd, contents.data() + written, contents.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      problem = "cannot write " + path + ": " + ErrnoMessage(n < 0 ? errno : EIO);
      break;
    }
    written += static_cast<std::size_t>(n);
  }
  if (!problem && fsync(fd) != 0) problem = "cannot flush " + path + ": " + ErrnoMessage(errno);
  if (close(fd) != 0 && !problem) problem = "cannot close " + path + ": " + ErrnoMessage(errno);
  if (problem) unlink(path.c_str());
  return problem;
}

// `text` quoted for a shell when it needs it, so the suggested command can be pasted.
std::string ShellWord(const std::string& text) {
  constexpr std::string_view kSafe =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
      "_-./+@%:,=";
  if (!text.empty() && text.find_first_not_of(kSafe) == std::string::npos) return text;
  std::string out = "'";
  for (const char c : text) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

// Where one key was found.
struct KeyLine {
  std::string_view value;
  int line = 0;  // 0 when absent
  bool comment_for_value = false;
};

// Why the key `name` found on `found` is unusable, or std::nullopt.
std::optional<std::string> KeyLineProblem(const std::string& name, const KeyLine& found) {
  if (found.comment_for_value) {
    return name + " has no value: a '#' after '=' starts a comment (put the key in double quotes)";
  }
  if (auto problem = Z85KeyProblem(found.value)) return name + " " + *problem;
  return std::nullopt;
}

// Returns the line starting at `pos` without its ending, and moves `pos` past the ending
// (LF, CRLF or CR).
std::string_view NextLine(std::string_view text, std::size_t& pos) {
  std::size_t end = text.find_first_of("\r\n", pos);
  if (end == std::string_view::npos) end = text.size();
  const std::string_view line = text.substr(pos, end - pos);
  pos = end;
  if (pos < text.size()) {
    const bool crlf = text[pos] == '\r' && pos + 1 < text.size() && text[pos + 1] == '\n';
    pos += crlf ? 2 : 1;
  }
  return line;
}

// Reads a certificate one line at a time. Holds views into the text being parsed, so it must not
// outlive it.
class CertificateReader {
 public:
  // Takes line `number`. Returns the reason when the line is refused.
  std::optional<std::string> Take(int number, std::string_view line) {
    std::size_t indent = 0;
    while (indent < line.size() && IsSpace(line[indent])) ++indent;
    std::string_view rest = line.substr(indent);
    while (!rest.empty() && IsSpace(rest.back())) rest.remove_suffix(1);
    if (rest.empty() || rest.front() == '#') return std::nullopt;  // blank or comment
    if (line.substr(0, indent).find('\t') != std::string_view::npos) {
      return std::string("tab in indentation; indent with spaces (4 per level)");
    }
    std::size_t depth = 0;
    if (auto problem = Nest(indent, depth)) return problem;
    Property property;
    if (auto problem = SplitProperty(rest, property)) return problem;
    path_.resize(depth);
    path_.push_back(property.name);
    return Interpret(number, depth, property);
  }

  // After the last line: the certificate, or the reason and line of the first problem.
  CertificateResult Finish() const {
    if (curve_line_ == 0) return Fail(0, "missing curve section");
    if (public_key_.line == 0) return Fail(curve_line_, "curve section has no public-key");
    if (auto problem = KeyLineProblem("public-key", public_key_)) {
      return Fail(public_key_.line, std::move(*problem));
    }
    Key decoded{};
    if (!DecodeKey(public_key_.value, decoded)) {
      return Fail(public_key_.line, "public-key could not be decoded");
    }
    if (secret_key_.line != 0) {
      if (auto problem = KeyLineProblem("secret-key", secret_key_)) {
        return Fail(secret_key_.line, std::move(*problem));
      }
      if (auto problem = KeypairProblem(public_key_.value, secret_key_.value)) {
        return Fail(secret_key_.line, std::move(*problem));
      }
    }
    Certificate certificate;
    certificate.public_key = std::string(public_key_.value);
    certificate.secret_key = std::string(secret_key_.value);
    certificate.metadata.reserve(metadata_.size());
    for (const auto& [name, value] : metadata_) certificate.metadata.emplace_back(name, value);
    CertificateResult result;
    result.certificate = std::move(certificate);
    return result;
  }

 private:
  // Finds the depth of a line indented by `indent` spaces. A deeper indentation than the previous
  // property's opens one new level, whatever its width; a shallower one must match an open level.
  std::optional<std::string> Nest(std::size_t indent, std::size_t& depth) {
    if (indent > widths_.back()) {
      if (path_.empty()) return std::string("indented line before any section");
      widths_.push_back(indent);
      depth = widths_.size() - 1;
      return std::nullopt;
    }
    depth = 0;
    while (depth < widths_.size() && widths_[depth] != indent) ++depth;
    if (depth == widths_.size()) {
      return "indentation of " + std::to_string(indent) +
             " spaces does not line up with any enclosing level";
    }
    widths_.resize(depth + 1);
    return std::nullopt;
  }

  // Records what a property at `depth` means for the certificate.
  std::optional<std::string> Interpret(int number, std::size_t depth, const Property& property) {
    const std::string name(property.name);
    if (depth == 0) {
      if (name == "curve" || name == "metadata") {
        if (property.has_value) return name + " must be a section, without '='";
        if (name == "curve" && curve_line_ == 0) curve_line_ = number;
      }
      return std::nullopt;
    }
    const std::string_view section = path_.front();
    if (section != "curve" && section != "metadata") return std::nullopt;  // not ours: ignored
    if (depth > 1) {
      return "'" + name + "' is nested too deep: the properties of " + std::string(section) +
             " sit one level under it";
    }
    if (section == "curve") {
      if (name != "public-key" && name != "secret-key") return std::nullopt;  // future fields
      if (!property.has_value) return name + " has no value";
      KeyLine& slot = name == "public-key" ? public_key_ : secret_key_;
      if (slot.line != 0) {
        return "duplicate " + name + " (first on line " + std::to_string(slot.line) + ")";
      }
      slot = {property.value, number, property.comment_for_value};
      return std::nullopt;
    }
    if (!property.has_value) return "metadata '" + name + "' has no value; expected 'name = value'";
    const auto [first, inserted] = metadata_lines_.emplace(property.name, number);
    if (!inserted) {
      return "duplicate metadata '" + name + "' (first on line " + std::to_string(first->second) +
             ")";
    }
    metadata_.emplace_back(property.name, property.value);
    return std::nullopt;
  }

  std::vector<std::size_t> widths_{0};  // widths_[d]: indentation of depth d on this branch
  std::vector<std::string_view> path_;  // path_[d]: property name at depth d on this branch
  int curve_line_ = 0;                  // first top-level `curve`; 0 if none yet
  KeyLine public_key_;
  KeyLine secret_key_;
  std::vector<std::pair<std::string_view, std::string_view>> metadata_;
  std::map<std::string_view, int> metadata_lines_;  // name -> line, to refuse duplicates
};

}  // namespace

std::string Certificate::Meta(std::string_view key) const {
  for (const auto& [name, value] : metadata) {
    if (name == key) return value;
  }
  return "";
}

CertificateResult ParseCertificate(std::string_view text) {
  if (text.size() > kMaxFileBytes) return Fail(0, "certificate is larger than 64 KiB");
  if (text.empty()) return Fail(0, "certificate is empty");
  if (text.substr(0, kUtf8Bom.size()) == kUtf8Bom) text.remove_prefix(kUtf8Bom.size());
  CertificateReader reader;
  int number = 0;
  for (std::size_t pos = 0; pos < text.size();) {
    const std::string_view line = NextLine(text, pos);
    ++number;
    if (auto problem = reader.Take(number, line)) return Fail(number, std::move(*problem));
  }
  return reader.Finish();
}

CertificateResult LoadCertificateFile(const std::string& path) {
  if (path.find('\0') != std::string::npos) return Fail(0, "path contains a NUL byte");
  // O_NONBLOCK so that a FIFO in place of a certificate cannot hang the caller in open().
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return Fail(0, "cannot open: " + ErrnoMessage(errno));
  struct stat info {};
  if (fstat(fd, &info) != 0) {
    const int error = errno;
    close(fd);
    return Fail(0, "cannot stat: " + ErrnoMessage(error));
  }
  if (!S_ISREG(info.st_mode)) {
    close(fd);
    return Fail(0, "not a regular file");
  }
  if (info.st_size > static_cast<off_t>(kMaxFileBytes)) {
    close(fd);
    return Fail(0, "file is larger than 64 KiB");
  }
  // One byte more than the limit, to notice a file that grew since fstat.
  std::string buffer(kMaxFileBytes + 1, '\0');
  std::size_t total = 0;
  int read_error = 0;
  while (total < buffer.size()) {
    const ssize_t n = read(fd, buffer.data() + total, buffer.size() - total);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) read_error = errno;
    if (n <= 0) break;
    total += static_cast<std::size_t>(n);
  }
  close(fd);
  CertificateResult result;
  if (read_error != 0) {
    result = Fail(0, "cannot read: " + ErrnoMessage(read_error));
  } else if (total > kMaxFileBytes) {
    result = Fail(0, "file is larger than 64 KiB");
  } else {
    result = ParseCertificate(std::string_view(buffer.data(), total));
  }
  sodium_memzero(buffer.data(), buffer.size());  // it may have held a secret key
  return result;
}

std::string FormatCertificate(const Certificate& certificate, bool with_secret) {
  std::string out = "#   ****  Generated by zguard  ****\n";
  if (with_secret) {
    out +=
        "#   ZeroMQ CURVE secret certificate. Keep it private: mode 0600, never shared,\n"
        "#   never committed, never copied to a host that should not act as this peer.\n";
  } else {
    out +=
        "#   ZeroMQ CURVE public certificate. Safe to share, but check that the key it\n"
        "#   carries really belongs to its owner before you trust it.\n";
  }
  out += "\nmetadata\n";
  for (const auto& [name, value] : certificate.metadata) {
    const char quote = value.find('"') != std::string::npos ? '\'' : '"';
    out.append("    ").append(name).append(" = ");
    out.append(1, quote).append(value).append(1, quote).append("\n");
  }
  out += "curve\n    public-key = \"" + certificate.public_key + "\"\n";
  if (with_secret) out += "    secret-key = \"" + certificate.secret_key + "\"\n";
  return out;
}

Certificate GenerateCertificate() {
  std::array<char, kKeyChars + 1> public_key{};
  std::array<char, kKeyChars + 1> secret_key{};
  Certificate certificate;
  if (zmq_curve_keypair(public_key.data(), secret_key.data()) == 0) {
    certificate.public_key.assign(public_key.data(), kKeyChars);
    certificate.secret_key.assign(secret_key.data(), kKeyChars);
  }
  sodium_memzero(secret_key.data(), secret_key.size());
  return certificate;
}

bool IsZ85Key(std::string_view text) {
  if (Z85KeyProblem(text)) return false;
  Key decoded{};
  const bool ok = DecodeKey(text, decoded);
  sodium_memzero(decoded.data(), decoded.size());  // `text` may have been a secret key
  return ok;
}

std::optional<std::string> WriteCertificatePair(const std::string& dir, const std::string& name,
                                                const Certificate& certificate) {
  if (dir.empty()) return std::string("no directory given");
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) {
    return "certificate name '" + name + "' must be a plain file name";
  }
  if (dir.find('\0') != std::string::npos || name.find('\0') != std::string::npos) {
    return std::string("directory or name contains a NUL byte");
  }
  if (auto problem = WritableProblem(certificate)) return problem;

  const std::string base = (dir.back() == '/' ? dir : dir + "/") + name;
  const std::string public_path = base + ".key";
  const std::string secret_path = base + ".key_secret";
  // Checked up front so that neither file is written when the other exists; O_EXCL below still
  // guards against a file appearing in between.
  for (const auto* path : {&public_path, &secret_path}) {
    struct stat info {};
    if (lstat(path->c_str(), &info) == 0)
      return *path + " already exists; refusing to overwrite it";
  }

  std::string secret_text = FormatCertificate(certificate, /*with_secret=*/true);
  auto problem = WriteNewFile(secret_path, secret_text, 0600);
  sodium_memzero(secret_text.data(), secret_text.size());
  if (problem) return problem;
  problem = WriteNewFile(public_path, FormatCertificate(certificate, /*with_secret=*/false), 0644);
  if (problem) unlink(secret_path.c_str());
  return problem;
}

std::optional<std::string> CheckSecretFilePermissions(const std::string& path) {
  const std::string fix = "; run: chmod 600 " + ShellWord(path);
  if (path.find('\0') != std::string::npos) return std::string("path contains a NUL byte");
  struct stat info {};
  if (stat(path.c_str(), &info) != 0) {
    return "cannot check the permissions of " + path + ": " + ErrnoMessage(errno);
  }
  if (!S_ISREG(info.st_mode)) return path + " is not a regular file";
  const unsigned mode = info.st_mode & 07777;
  std::array<char, 8> octal{};
  std::snprintf(octal.data(), octal.size(), "%04o", mode);
  // A file root owns may be shared read-only with one group (0640, 0440): only root could have
  // granted that, and it is how Kubernetes mounts a Secret for a non-root pod (fsGroup). The same
  // rule as PostgreSQL's for its TLS key.
  const unsigned allowed_group_bits = info.st_uid == 0 ? S_IRGRP : 0;
  if ((mode & 077 & ~allowed_group_bits) != 0) {
    return path + " has mode " + octal.data() +
           ": a secret key must not be accessible to group or others" +
           (info.st_uid == 0 ? " (a file owned by root may be group-readable)" : "") + fix;
  }
  if ((mode & S_IRUSR) == 0) {
    return path + " has mode " + octal.data() + ": its owner cannot read it" + fix;
  }
  return std::nullopt;
}

}  // namespace zguard::proto
