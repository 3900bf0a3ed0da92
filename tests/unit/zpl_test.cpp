// ZPL certificates: what zguard writes reads back, what CZMQ and pyzmq write is understood, every
// malformed file is refused with a line and a reason (never a crash), and key files are created
// and checked with the right permissions.
#include "proto/zpl.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>
#include "tests/support/temp_dir.hpp"

#include <array>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

namespace zguard::proto {
namespace {

using zguard::testing::TempDir;

// Sets the process umask for one scope.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : old_(umask(mask)) {}
  ~ScopedUmask() { umask(old_); }
  ScopedUmask(const ScopedUmask&) = delete;
  ScopedUmask& operator=(const ScopedUmask&) = delete;

 private:
  mode_t old_;
};

unsigned ModeOf(const std::string& path) {
  struct stat info {};
  if (stat(path.c_str(), &info) != 0) return 0xFFFFFFFFU;
  return info.st_mode & 07777;
}

bool Exists(const std::string& path) {
  struct stat info {};
  return lstat(path.c_str(), &info) == 0;
}

void WriteFile(const std::string& path, const std::string& contents, mode_t mode) {
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << contents;
  }
  ASSERT_EQ(chmod(path.c_str(), mode), 0) << path;
}

// Two keypairs made once for the whole test binary.
const Certificate& PairA() {
  static const Certificate pair = GenerateCertificate();
  return pair;
}
const Certificate& PairB() {
  static const Certificate pair = GenerateCertificate();
  return pair;
}

// A keypair whose keys can be written unquoted: a bare value starting with `#` is a comment.
const Certificate& BarePair() {
  static const Certificate pair = [] {
    Certificate candidate = GenerateCertificate();
    while (candidate.public_key.front() == '#' || candidate.secret_key.front() == '#') {
      candidate = GenerateCertificate();
    }
    return candidate;
  }();
  return pair;
}

// A curve section in CZMQ's layout; `secret` is left out when empty.
std::string CurveSection(const std::string& public_key, const std::string& secret = "") {
  std::string out = "curve\n    public-key = \"" + public_key + "\"\n";
  if (!secret.empty()) out += "    secret-key = \"" + secret + "\"\n";
  return out;
}

// Parses text that must be refused, returning the result for further checks.
CertificateResult MustFail(const std::string& text) {
  auto result = ParseCertificate(text);
  EXPECT_FALSE(result.certificate.has_value()) << text;
  EXPECT_FALSE(result.error.empty()) << text;
  return result;
}

TEST(Z85, GeneratedKeysAreValidAndDistinct) {
  ASSERT_EQ(PairA().public_key.size(), 40U);
  ASSERT_EQ(PairA().secret_key.size(), 40U);
  EXPECT_TRUE(IsZ85Key(PairA().public_key));
  EXPECT_TRUE(IsZ85Key(PairA().secret_key));
  EXPECT_NE(PairA().public_key, PairB().public_key);
  EXPECT_TRUE(PairA().metadata.empty());
}

TEST(Z85, IsZ85KeyRejectsWrongLengthsAlphabetAndOverflow) {
  const std::string good = PairA().public_key;
  EXPECT_FALSE(IsZ85Key(""));
  EXPECT_FALSE(IsZ85Key(good.substr(0, 39)));
  EXPECT_FALSE(IsZ85Key(good + "0"));
  EXPECT_FALSE(IsZ85Key(good.substr(0, 35)));  // a multiple of 5, but not 32 bytes
  EXPECT_FALSE(IsZ85Key(good + "00000"));
  for (const char bad : {'~', ',', '"', '\'', ' ', '\\', '\0', '\x80'}) {
    std::string key = good;
    key[17] = bad;
    EXPECT_FALSE(IsZ85Key(key)) << static_cast<int>(bad);
  }
  // "#####" is 85^5 - 1, more than a 32-bit group can hold.
  EXPECT_FALSE(IsZ85Key("#####" + good.substr(5)));
  EXPECT_TRUE(IsZ85Key(std::string(40, '0')));
}

TEST(FormatCertificate, PublicRoundTripKeepsMetadataInOrderAndDropsSecret) {
  Certificate certificate = PairA();
  certificate.metadata = {{"name", "alice"},
                          {"email", "alice@example.com"},
                          {"empty", ""},
                          {"note", "has spaces # and a hash"},
                          {"quote", "say \"hi\""}};
  const std::string text = FormatCertificate(certificate, /*with_secret=*/false);
  EXPECT_EQ(text.find(certificate.secret_key), std::string::npos);
  EXPECT_NE(text.find("    name = \"alice\"\n"), std::string::npos) << text;
  EXPECT_NE(text.find("    quote = 'say \"hi\"'\n"), std::string::npos) << text;

  const auto result = ParseCertificate(text);
  ASSERT_TRUE(result.certificate.has_value()) << result.line << ": " << result.error;
  EXPECT_EQ(result.error, "");
  EXPECT_EQ(result.line, 0);
  EXPECT_EQ(result.certificate->public_key, certificate.public_key);
  EXPECT_EQ(result.certificate->secret_key, "");
  EXPECT_EQ(result.certificate->metadata, certificate.metadata);
  EXPECT_EQ(result.certificate->Meta("email"), "alice@example.com");
  EXPECT_EQ(result.certificate->Meta("missing"), "");
}

TEST(FormatCertificate, SecretRoundTripKeepsBothKeysAndMetadata) {
  Certificate certificate = PairB();
  certificate.metadata = {{"role", "worker"}, {"x-service/name", "echo@1.0"}};
  const auto result = ParseCertificate(FormatCertificate(certificate, /*with_secret=*/true));
  ASSERT_TRUE(result.certificate.has_value()) << result.line << ": " << result.error;
  EXPECT_EQ(result.certificate->public_key, certificate.public_key);
  EXPECT_EQ(result.certificate->secret_key, certificate.secret_key);
  EXPECT_EQ(result.certificate->metadata, certificate.metadata);
}

TEST(FormatCertificate, StartsWithCommentsThenMetadataThenCurve) {
  const std::string text = FormatCertificate(PairA(), /*with_secret=*/true);
  EXPECT_EQ(text.rfind("#", 0), 0U);
  const auto metadata = text.find("\nmetadata\n");
  const auto curve = text.find("\ncurve\n");
  ASSERT_NE(metadata, std::string::npos);
  ASSERT_NE(curve, std::string::npos);
  EXPECT_LT(metadata, curve);
  EXPECT_NE(text.find("    secret-key = \"" + PairA().secret_key + "\"\n"), std::string::npos);
}

TEST(ParseCertificate, AcceptsDoubleSingleAndBareValues) {
  const std::string text =
      "metadata\n"
      "    double = \"two words\"\n"
      "    single = 'it said \"so\"'\n"
      "    bare = plain\n"
      "    bare-comment = plain   # a comment\n"
      "    bare-hash = a#b\n"
      "    tight=packed\n"
      "    empty =\n"
      "    empty-quoted = \"\"\n"
      "    quoted-comment = \"x\"  # trailing\n"
      "curve\n"
      "    public-key = '" +
      BarePair().public_key + "'\n" + "    secret-key = " + BarePair().secret_key + "\n";
  const auto result = ParseCertificate(text);
  ASSERT_TRUE(result.certificate.has_value()) << result.line << ": " << result.error;
  const Certificate& c = *result.certificate;
  EXPECT_EQ(c.Meta("double"), "two words");
  EXPECT_EQ(c.Meta("single"), "it said \"so\"");
  EXPECT_EQ(c.Meta("bare"), "plain");
  EXPECT_EQ(c.Meta("bare-comment"), "plain");
  EXPECT_EQ(c.Meta("bare-hash"), "a#b");
  EXPECT_EQ(c.Meta("tight"), "packed");
  EXPECT_EQ(c.Meta("empty"), "");
  EXPECT_EQ(c.Meta("empty-quoted"), "");
  EXPECT_EQ(c.Meta("quoted-comment"), "x");
  EXPECT_EQ(c.metadata.size(), 9U);
  EXPECT_EQ(c.public_key, BarePair().public_key);
  EXPECT_EQ(c.secret_key, BarePair().secret_key);
}

TEST(ParseCertificate, IgnoresCommentsBlankLinesAndUnknownSections) {
  const std::string text =
      "#   ****  Generated on 2024-01-01 by CZMQ  ****\n"
      "\n"
      "   \n"
      "context\n"
      "    iothreads = 1\n"
      "    nested\n"
      "        deeper = \"ignored\"\n"
      "metadata\n"
      "    # a comment inside a section\n"
      "\n"
      "    name = \"bob\"\n"
      "        # an indented comment is still a comment\n"
      "curve\n"
      "    future-field = \"ignored\"\n"
      "    public-key = \"" +
      PairA().public_key + "\"\n" + "trailer = 1\n";
  const auto result = ParseCertificate(text);
  ASSERT_TRUE(result.certificate.has_value()) << result.line << ": " << result.error;
  EXPECT_EQ(result.certificate->public_key, PairA().public_key);
  EXPECT_EQ(result.certificate->secret_key, "");
  ASSERT_EQ(result.certificate->metadata.size(), 1U);
  EXPECT_EQ(result.certificate->Meta("name"), "bob");
}

TEST(ParseCertificate, ReadsPyzmqStyleEmptySectionsAndMetadataOnlyInSecret) {
  // pyzmq leaves `metadata` empty in the public file and writes bare values in the secret one.
  const std::string header = "#   ****  Generated on 2024-01-01 by pyzmq  ****\n#   comment\n\n";
  const auto public_result =
      ParseCertificate(header + "metadata\n" + CurveSection(PairA().public_key));
  ASSERT_TRUE(public_result.certificate.has_value()) << public_result.error;
  EXPECT_TRUE(public_result.certificate->metadata.empty());

  const auto secret_result = ParseCertificate(header + "metadata\n    role = client\n" +
                                              CurveSection(PairA().public_key, PairA().secret_key));
  ASSERT_TRUE(secret_result.certificate.has_value()) << secret_result.error;
  EXPECT_EQ(secret_result.certificate->Meta("role"), "client");
  EXPECT_EQ(secret_result.certificate->secret_key, PairA().secret_key);

  // No metadata section at all, and an empty curve-less unknown section.
  const auto bare = ParseCertificate("other\n" + CurveSection(PairA().public_key));
  ASSERT_TRUE(bare.certificate.has_value()) << bare.error;
}

TEST(ParseCertificate, AcceptsCrlfAndCrLineEndings) {
  const std::string lf = "# comment\nmetadata\n    name = \"carol\"\n" +
                         CurveSection(PairA().public_key, PairA().secret_key);
  std::string crlf;
  std::string cr;
  for (const char c : lf) {
    crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
    cr += c == '\n' ? '\r' : c;
  }
  for (const auto& text : {crlf, cr}) {
    const auto result = ParseCertificate(text);
    ASSERT_TRUE(result.certificate.has_value()) << result.line << ": " << result.error;
    EXPECT_EQ(result.certificate->Meta("name"), "carol");
    EXPECT_EQ(result.certificate->secret_key, PairA().secret_key);
  }
  // A CRLF line counts once: the bad key is on line 3.
  const auto bad = MustFail("metadata\r\ncurve\r\n    public-key = \"short\"\r\n");
  EXPECT_EQ(bad.line, 3);
}

TEST(ParseCertificate, AcceptsAnyConsistentIndentation) {
  const std::string text =
      "metadata\n  name = two\ncurve\n  public-key = " + BarePair().public_key +
      "\n  secret-key = " + BarePair().secret_key + "\n";
  const auto result = ParseCertificate(text);
  ASSERT_TRUE(result.certificate.has_value()) << result.line << ": " << result.error;
  EXPECT_EQ(result.certificate->Meta("name"), "two");
}

TEST(ParseCertificate, SkipsUtf8ByteOrderMark) {
  const auto result = ParseCertificate("\xEF\xBB\xBF" + CurveSection(PairA().public_key));
  EXPECT_TRUE(result.certificate.has_value()) << result.error;
}

TEST(ParseCertificateErrors, EmptyTextAndCommentsOnly) {
  auto result = MustFail("");
  EXPECT_EQ(result.line, 0);
  EXPECT_NE(result.error.find("empty"), std::string::npos) << result.error;
  result = MustFail("# only\n\n# comments\n");
  EXPECT_EQ(result.line, 0);
  EXPECT_EQ(result.error, "missing curve section");
}

TEST(ParseCertificateErrors, MissingCurveSectionOrPublicKey) {
  auto result = MustFail("metadata\n    name = x\n");
  EXPECT_EQ(result.line, 0);
  EXPECT_EQ(result.error, "missing curve section");
  // `curve` nested inside another section is not the curve section.
  result = MustFail("other\n    curve\n        public-key = " + PairA().public_key + "\n");
  EXPECT_EQ(result.error, "missing curve section");

  result = MustFail("metadata\ncurve\n    secret-key = \"" + PairA().secret_key + "\"\n");
  EXPECT_EQ(result.line, 2);
  EXPECT_EQ(result.error, "curve section has no public-key");
}

TEST(ParseCertificateErrors, BadKeyLength) {
  const std::string key = PairA().public_key;
  auto result = MustFail("# c\n" + CurveSection(key.substr(0, 39)));
  EXPECT_EQ(result.line, 3);
  EXPECT_EQ(result.error, "public-key is not a 40-character Z85 key (it has 39 characters)");
  result = MustFail(CurveSection(key + "00000"));
  EXPECT_EQ(result.line, 2);
  EXPECT_NE(result.error.find("45 characters"), std::string::npos) << result.error;
  result = MustFail("curve\n    public-key =\n");
  EXPECT_EQ(result.line, 2);
  EXPECT_NE(result.error.find("0 characters"), std::string::npos) << result.error;
  result = MustFail("curve\n    public-key\n");
  EXPECT_EQ(result.line, 2);
  EXPECT_EQ(result.error, "public-key has no value");
}

TEST(ParseCertificateErrors, BareKeyStartingWithHashIsACommentAndSaysSo) {
  const auto result = MustFail("curve\n    public-key = #" + PairA().public_key.substr(1) + "\n");
  EXPECT_EQ(result.line, 2);
  EXPECT_NE(result.error.find("put the key in double quotes"), std::string::npos) << result.error;
}

TEST(ParseCertificateErrors, BadZ85Characters) {
  std::string key = PairA().public_key;
  key[9] = '~';
  auto result = MustFail(CurveSection(key));
  EXPECT_EQ(result.line, 2);
  EXPECT_EQ(result.error,
            "public-key is not a 40-character Z85 key (character 10 is not in the Z85 alphabet)");

  result = MustFail(CurveSection("#####" + PairA().public_key.substr(5)));
  EXPECT_EQ(result.line, 2);
  EXPECT_NE(result.error.find("characters 1-5 encode more than 32 bits"), std::string::npos)
      << result.error;
}

TEST(ParseCertificateErrors, BadSecretKeyIsNeverEchoed) {
  std::string secret = PairA().secret_key;
  secret[0] = ',';
  const auto result = MustFail(CurveSection(PairA().public_key, secret));
  EXPECT_EQ(result.line, 3);
  EXPECT_NE(result.error.find("secret-key is not a 40-character Z85 key"), std::string::npos)
      << result.error;
  EXPECT_EQ(result.error.find(secret.substr(1, 10)), std::string::npos) << result.error;
}

TEST(ParseCertificateErrors, SecretNotMatchingPublic) {
  const auto result = MustFail("metadata\n" + CurveSection(PairA().public_key, PairB().secret_key));
  EXPECT_EQ(result.line, 4);
  EXPECT_EQ(result.error, "secret-key does not match public-key");
  EXPECT_EQ(result.error.find(PairB().secret_key), std::string::npos);
}

TEST(ParseCertificateErrors, TabIndentation) {
  auto result = MustFail("curve\n\tpublic-key = \"" + PairA().public_key + "\"\n");
  EXPECT_EQ(result.line, 2);
  EXPECT_NE(result.error.find("tab"), std::string::npos) << result.error;
  result = MustFail("metadata\n  \t  name = x\n" + CurveSection(PairA().public_key));
  EXPECT_EQ(result.line, 2);
}

TEST(ParseCertificateErrors, InconsistentOrMisplacedIndentation) {
  auto result = MustFail("curve\n    public-key = " + PairA().public_key +
                         "\n  secret-key = " + PairA().secret_key + "\n");
  EXPECT_EQ(result.line, 3);
  EXPECT_NE(result.error.find("does not line up"), std::string::npos) << result.error;

  result = MustFail("# header\n    curve\n");
  EXPECT_EQ(result.line, 2);
  EXPECT_EQ(result.error, "indented line before any section");

  result = MustFail("curve\n    public-key = " + PairA().public_key + "\n        extra = 1\n");
  EXPECT_EQ(result.line, 3);
  EXPECT_NE(result.error.find("nested too deep"), std::string::npos) << result.error;
}

TEST(ParseCertificateErrors, MalformedLines) {
  struct Case {
    std::string text;
    int line;
    std::string fragment;
  };
  const std::string curve = CurveSection(PairA().public_key);
  const std::vector<Case> cases = {
      {"metadata\n    name = \"open\n" + curve, 2, "unterminated quoted value"},
      {"metadata\n    name = 'open\n" + curve, 2, "unterminated quoted value"},
      {"metadata\n    name = two words\n" + curve, 2, "after the value"},
      {"metadata\n    name = \"a\"b\n" + curve, 2, "after the closing quote"},
      {"metadata\n    name = \"a\" \"b\"\n" + curve, 2, "after the value"},
      {"metadata\n    na me = x\n" + curve, 2, "expected '=' after 'na'"},
      {"metadata\n    = x\n" + curve, 2, "expected a property name, found '='"},
      {"metadata\n    name\n" + curve, 2, "has no value"},
      {"metadata\n    name = x\n    name = y\n" + curve, 3, "duplicate metadata 'name'"},
      {curve + "    public-key = " + PairA().public_key + "\n", 3, "duplicate public-key"},
      {"curve = yes\n", 1, "must be a section"},
      {"metadata = x\n" + curve, 1, "must be a section"},
      {"metadata\n    name = \"a\x01z\"\n" + curve, 2, "control character"},
      {"metadata\n    name = \"a\tb\"\n" + curve, 2, "control character"},
      {"metadata\n    name = \"a\x7F\"\n" + curve, 2, "control character"},
      {"[curve]\n", 1, "expected a property name, found '['"},
      {"curve:\n", 1, "expected '=' after 'curve', found ':'"},
  };
  for (const auto& c : cases) {
    const auto result = MustFail(c.text);
    EXPECT_EQ(result.line, c.line) << c.text << "\n" << result.error;
    EXPECT_NE(result.error.find(c.fragment), std::string::npos) << c.text << "\n" << result.error;
  }
}

TEST(ParseCertificateErrors, HugeValueNameAndText) {
  const std::string curve = CurveSection(PairA().public_key);
  const std::string limit(1024, 'v');
  auto ok = ParseCertificate("metadata\n    big = \"" + limit + "\"\n" + curve);
  ASSERT_TRUE(ok.certificate.has_value()) << ok.error;
  EXPECT_EQ(ok.certificate->Meta("big"), limit);

  auto result = MustFail("metadata\n    big = \"" + limit + "v\"\n" + curve);
  EXPECT_EQ(result.line, 2);
  EXPECT_EQ(result.error, "value is longer than 1024 bytes");
  result = MustFail("metadata\n    big = " + limit + "v\n" + curve);
  EXPECT_EQ(result.line, 2);

  result = MustFail("metadata\n    " + std::string(256, 'n') + " = x\n" + curve);
  EXPECT_EQ(result.line, 2);
  EXPECT_EQ(result.error, "name is longer than 255 bytes");

  // Over 64 KiB in total, even if every line is fine.
  std::string text = curve;
  while (text.size() <= 64 * 1024) text += "# padding padding padding padding padding\n";
  result = MustFail(text);
  EXPECT_EQ(result.line, 0);
  EXPECT_EQ(result.error, "certificate is larger than 64 KiB");
}

TEST(ParseCertificateErrors, BinaryGarbage) {
  const std::string png("\x89PNG\r\n\x1A\n\0\0\0\rIHDR\0\0\x01\0", 20);
  auto result = MustFail(png);
  EXPECT_EQ(result.line, 1);
  EXPECT_EQ(result.error, "expected a property name, found byte 0x89");
  result = MustFail(std::string("\0\0\0\0", 4));
  EXPECT_EQ(result.line, 1);
  EXPECT_NE(result.error.find("byte 0x00"), std::string::npos) << result.error;
}

// Every result is either a certificate or a line and a reason; nothing crashes or throws.
void ExpectWellFormedResult(const std::string& text) {
  const auto result = ParseCertificate(text);
  EXPECT_NE(result.certificate.has_value(), !result.error.empty());
  EXPECT_GE(result.line, 0);
  EXPECT_LE(static_cast<std::size_t>(result.line), text.size() + 1);
  if (result.certificate) {
    EXPECT_TRUE(IsZ85Key(result.certificate->public_key));
    EXPECT_EQ(result.line, 0);
  }
}

TEST(ParseCertificateErrors, RandomBytesAndMutationsNeverCrash) {
  std::mt19937 random(20240229);
  std::string alphabet = "curvepublic-key=metadata \"'#\n\r\t\x80\xFF" + PairA().public_key;
  alphabet.push_back('\0');
  for (int i = 0; i < 2000; ++i) {
    std::string text(random() % 300, '\0');
    for (auto& c : text) {
      c = (random() % 2 != 0U) ? alphabet[random() % alphabet.size()]
                               : static_cast<char>(random() % 256);
    }
    ExpectWellFormedResult(text);
  }
  Certificate certificate = PairA();
  certificate.metadata = {{"name", "fuzz"}, {"role", "client"}};
  const std::string valid = FormatCertificate(certificate, /*with_secret=*/true);
  for (int i = 0; i < 3000; ++i) {
    std::string text = valid;
    for (unsigned edits = 1 + random() % 4; edits > 0 && !text.empty(); --edits) {
      const std::size_t at = random() % text.size();
      switch (random() % 3) {
        case 0:
          text[at] = static_cast<char>(random() % 256);
          break;
        case 1:
          text.erase(at, 1 + random() % 8);
          break;
        default:
          text.insert(at, 1, alphabet[random() % alphabet.size()]);
          break;
      }
    }
    ExpectWellFormedResult(text);
  }
}

TEST(WriteCertificatePair, CreatesBothFilesWithExactModesWhateverTheUmask) {
  for (const mode_t mask : {mode_t{0}, mode_t{022}, mode_t{077}}) {
    TempDir dir;
    ASSERT_FALSE(dir.path().empty());
    Certificate certificate = PairA();
    certificate.metadata = {{"name", "server"}};
    {
      const ScopedUmask scoped(mask);
      const auto error = WriteCertificatePair(dir.path(), "server", certificate);
      ASSERT_FALSE(error.has_value()) << *error;
    }
    EXPECT_EQ(ModeOf(dir.File("server.key")), 0644U) << "umask " << mask;
    EXPECT_EQ(ModeOf(dir.File("server.key_secret")), 0600U) << "umask " << mask;
    EXPECT_FALSE(CheckSecretFilePermissions(dir.File("server.key_secret")).has_value());

    const auto public_result = LoadCertificateFile(dir.File("server.key"));
    ASSERT_TRUE(public_result.certificate.has_value()) << public_result.error;
    EXPECT_EQ(public_result.certificate->public_key, certificate.public_key);
    EXPECT_EQ(public_result.certificate->secret_key, "");
    EXPECT_EQ(public_result.certificate->Meta("name"), "server");

    const auto secret_result = LoadCertificateFile(dir.File("server.key_secret"));
    ASSERT_TRUE(secret_result.certificate.has_value()) << secret_result.error;
    EXPECT_EQ(secret_result.certificate->secret_key, certificate.secret_key);
    EXPECT_EQ(secret_result.certificate->Meta("name"), "server");
  }
}

TEST(WriteCertificatePair, RefusesToOverwrite) {
  TempDir dir;
  ASSERT_FALSE(WriteCertificatePair(dir.path() + "/", "peer", PairA()).has_value());
  const auto error = WriteCertificatePair(dir.path(), "peer", PairB());
  ASSERT_TRUE(error.has_value());
  EXPECT_NE(error->find("already exists"), std::string::npos) << *error;
  const auto kept = LoadCertificateFile(dir.File("peer.key_secret"));
  ASSERT_TRUE(kept.certificate.has_value()) << kept.error;
  EXPECT_EQ(kept.certificate->secret_key, PairA().secret_key);

  // Only the public file exists: the secret one must not be created either.
  WriteFile(dir.File("lonely.key"), "anything", 0644);
  ASSERT_TRUE(WriteCertificatePair(dir.path(), "lonely", PairA()).has_value());
  EXPECT_FALSE(Exists(dir.File("lonely.key_secret")));
}

TEST(WriteCertificatePair, RefusesBadNamesBadCertificatesAndMissingDirectories) {
  TempDir dir;
  for (const char* name : {"", ".", "..", "a/b", "../escape"}) {
    EXPECT_TRUE(WriteCertificatePair(dir.path(), name, PairA()).has_value()) << name;
  }
  Certificate mismatched = PairA();
  mismatched.secret_key = PairB().secret_key;
  Certificate public_only = PairA();
  public_only.secret_key.clear();
  Certificate bad_metadata = PairA();
  bad_metadata.metadata = {{"bad name", "x"}};
  Certificate both_quotes = PairA();
  both_quotes.metadata = {{"name", "it's \"x\""}};
  Certificate newline = PairA();
  newline.metadata = {{"name", "a\nb"}};
  for (const auto* certificate :
       {&mismatched, &public_only, &bad_metadata, &both_quotes, &newline}) {
    const auto error = WriteCertificatePair(dir.path(), "c", *certificate);
    ASSERT_TRUE(error.has_value());
    EXPECT_EQ(error->find(PairA().secret_key), std::string::npos);
    EXPECT_EQ(error->find(PairB().secret_key), std::string::npos);
    EXPECT_FALSE(Exists(dir.File("c.key")));
    EXPECT_FALSE(Exists(dir.File("c.key_secret")));
  }
  EXPECT_TRUE(WriteCertificatePair(dir.File("missing"), "c", PairA()).has_value());
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(CheckSecretFilePermissions, AcceptsOwnerOnlyModes) {
  TempDir dir;
  for (const mode_t mode : {mode_t{0600}, mode_t{0400}}) {
    const std::string path = dir.File("secret");
    WriteFile(path, "x", mode);
    EXPECT_FALSE(CheckSecretFilePermissions(path).has_value()) << std::oct << mode;
    chmod(path.c_str(), 0600);
  }
}

TEST(CheckSecretFilePermissions, RefusesGroupOrWorldAccessWithTheFix) {
  TempDir dir;
  const std::string path = dir.File("secret");
  WriteFile(path, "x", 0600);
  // Group-read is allowed on root's files only: as root, hand the file to another user first.
  if (geteuid() == 0) {
    ASSERT_EQ(chown(path.c_str(), 65534, 65534), 0);
  }
  for (const auto& [mode, octal] :
       {std::pair{mode_t{0640}, "0640"}, std::pair{mode_t{0644}, "0644"},
        std::pair{mode_t{0604}, "0604"}, std::pair{mode_t{0620}, "0620"}}) {
    WriteFile(path, "x", mode);
    const auto error = CheckSecretFilePermissions(path);
    ASSERT_TRUE(error.has_value()) << octal;
    EXPECT_NE(error->find(path), std::string::npos) << *error;
    EXPECT_NE(error->find(octal), std::string::npos) << *error;
    EXPECT_NE(error->find("run: chmod 600 " + path), std::string::npos) << *error;
  }
  WriteFile(path, "x", 0200);
  const auto unreadable = CheckSecretFilePermissions(path);
  ASSERT_TRUE(unreadable.has_value());
  EXPECT_NE(unreadable->find("chmod 600"), std::string::npos) << *unreadable;
}

// Kubernetes mounts a Secret for a non-root pod as root:fsGroup with the group-read bit added.
TEST(CheckSecretFilePermissions, AcceptsGroupReadOnRootOwnedFilesOnly) {
  if (geteuid() != 0) {
    GTEST_SKIP() << "needs root to own the file (CI runs as root)";
  }
  TempDir dir;
  const std::string path = dir.File("secret");
  for (const mode_t mode : {mode_t{0640}, mode_t{0440}}) {
    WriteFile(path, "x", mode);
    EXPECT_FALSE(CheckSecretFilePermissions(path).has_value()) << std::oct << mode;
  }
  for (const auto& [mode, octal] :
       {std::pair{mode_t{0660}, "0660"}, std::pair{mode_t{0644}, "0644"},
        std::pair{mode_t{0650}, "0650"}}) {
    WriteFile(path, "x", mode);
    const auto error = CheckSecretFilePermissions(path);
    ASSERT_TRUE(error.has_value()) << octal;
    EXPECT_NE(error->find(octal), std::string::npos) << *error;
    EXPECT_NE(error->find("owned by root may be group-readable"), std::string::npos) << *error;
  }
  WriteFile(path, "x", 0640);
  ASSERT_EQ(chown(path.c_str(), 65534, 0), 0);
  EXPECT_TRUE(CheckSecretFilePermissions(path).has_value()) << "owned by nobody, 0640";
}

TEST(CheckSecretFilePermissions, RefusesMissingFilesAndDirectoriesAndQuotesOddPaths) {
  TempDir dir;
  auto error = CheckSecretFilePermissions(dir.File("missing"));
  ASSERT_TRUE(error.has_value());
  EXPECT_NE(error->find(dir.File("missing")), std::string::npos) << *error;
  error = CheckSecretFilePermissions(dir.path());
  ASSERT_TRUE(error.has_value());
  EXPECT_NE(error->find("not a regular file"), std::string::npos) << *error;

  const std::string odd = dir.File("it's secret");
  WriteFile(odd, "x", 0644);
  error = CheckSecretFilePermissions(odd);
  ASSERT_TRUE(error.has_value());
  EXPECT_NE(error->find("run: chmod 600 '" + dir.path() + "/it'\\''s secret'"), std::string::npos)
      << *error;
}

TEST(LoadCertificateFile, MissingFileDirectoryAndOversizedFile) {
  TempDir dir;
  auto result = LoadCertificateFile(dir.File("absent.key"));
  EXPECT_FALSE(result.certificate.has_value());
  EXPECT_EQ(result.line, 0);
  EXPECT_NE(result.error.find("cannot open"), std::string::npos) << result.error;
  EXPECT_EQ(result.error.find(dir.path()), std::string::npos) << "the caller adds the path";

  result = LoadCertificateFile(dir.path());
  EXPECT_FALSE(result.certificate.has_value());
  EXPECT_FALSE(result.error.empty());

  WriteFile(dir.File("big.key"), CurveSection(PairA().public_key) + std::string(64 * 1024, '#'),
            0644);
  result = LoadCertificateFile(dir.File("big.key"));
  EXPECT_FALSE(result.certificate.has_value());
  EXPECT_EQ(result.error, "file is larger than 64 KiB");

  WriteFile(dir.File("bad.key"), "curve\n    public-key = nope\n", 0644);
  result = LoadCertificateFile(dir.File("bad.key"));
  EXPECT_EQ(result.line, 2);
  EXPECT_EQ(result.error.find(dir.path()), std::string::npos);
}

// Runs one Python statement with Debian's interpreter, which has pyzmq.
int RunPython(const std::string& statement) {
  return std::system(("/usr/bin/python3 -c \"" + statement + "\"").c_str());
}

TEST(PyzmqInterop, LoadsCertificatesWrittenByZmqAuth) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  ASSERT_EQ(
      RunPython("import zmq.auth; zmq.auth.create_certificates('" + dir.path() + "', 'pyclient')"),
      0)
      << "pyzmq could not write certificates";

  const auto public_result = LoadCertificateFile(dir.File("pyclient.key"));
  ASSERT_TRUE(public_result.certificate.has_value())
      << public_result.line << ": " << public_result.error;
  const auto secret_result = LoadCertificateFile(dir.File("pyclient.key_secret"));
  ASSERT_TRUE(secret_result.certificate.has_value())
      << secret_result.line << ": " << secret_result.error;

  EXPECT_EQ(public_result.certificate->secret_key, "");
  EXPECT_EQ(public_result.certificate->public_key, secret_result.certificate->public_key);
  ASSERT_TRUE(IsZ85Key(secret_result.certificate->secret_key));
  // libzmq's own derivation agrees with the libsodium check the parser made.
  std::array<char, 41> derived{};
  ASSERT_EQ(zmq_curve_public(derived.data(), secret_result.certificate->secret_key.c_str()), 0);
  EXPECT_EQ(std::string(derived.data()), secret_result.certificate->public_key);
}

TEST(PyzmqInterop, ReadsMetadataPyzmqWritesOnlyInTheSecretFile) {
  TempDir dir;
  ASSERT_EQ(RunPython("import zmq.auth; zmq.auth.create_certificates('" + dir.path() +
                      "', 'pyworker', metadata={'role': 'worker', 'team': 'ops'})"),
            0);
  const auto public_result = LoadCertificateFile(dir.File("pyworker.key"));
  const auto secret_result = LoadCertificateFile(dir.File("pyworker.key_secret"));
  ASSERT_TRUE(public_result.certificate.has_value()) << public_result.error;
  ASSERT_TRUE(secret_result.certificate.has_value()) << secret_result.error;
  EXPECT_TRUE(public_result.certificate->metadata.empty());
  EXPECT_EQ(secret_result.certificate->Meta("role"), "worker");
  EXPECT_EQ(secret_result.certificate->Meta("team"), "ops");
}

TEST(PyzmqInterop, ZmqAuthReadsCertificatesZguardWrites) {
  TempDir dir;
  Certificate certificate = GenerateCertificate();
  certificate.metadata = {{"name", "from zguard"}};
  ASSERT_FALSE(WriteCertificatePair(dir.path(), "zg", certificate).has_value());
  // Python checks the pair itself, so no key appears on a command line.
  EXPECT_EQ(RunPython("import zmq, zmq.auth; "
                      "p, s = zmq.auth.load_certificate('" +
                      dir.File("zg.key_secret") +
                      "'); "
                      "q, n = zmq.auth.load_certificate('" +
                      dir.File("zg.key") +
                      "'); "
                      "assert n is None and p == q and zmq.curve_public(s) == p"),
            0);
}

}  // namespace
}  // namespace zguard::proto
