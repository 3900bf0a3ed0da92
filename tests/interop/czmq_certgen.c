/* czmq_certgen: CURVE certificates made and read by CZMQ's zcert, for the
 * interop tests (tests/unit/czmq_interop_test.cpp). An independent writer and
 * reader of the ZPL certificate format, so that zguard is checked against
 * CZMQ itself rather than against its own idea of CZMQ.
 *
 *   czmq_certgen DIR NAME [KEY=VALUE...]
 *       zcert_new, zcert_set_meta for each KEY=VALUE, zcert_save(DIR/NAME):
 *       CZMQ writes DIR/NAME (public) and DIR/NAME_secret (secret). Prints
 *       the public key (Z85) and a newline on stdout.
 *
 *   czmq_certgen --load FILE
 *       zcert_load(FILE), which reads FILE_secret when it exists and FILE
 *       otherwise. Prints three lines:
 *           public-key: <Z85 public key>
 *           name: <metadata "name", empty when absent>
 *           secret-key: matches | absent | mismatch
 *       The secret key itself is never printed: "matches" means it is
 *       present and libzmq derives the public key from it.
 *
 * Exit status 0 on success, 1 on any failure (with a message on stderr),
 * 2 on bad usage. */
#include <czmq.h>
#include <stdio.h>
#include <string.h>

/* zcert_save and zcert_load build "FILE_secret" in a 256-byte buffer and
 * would silently truncate a longer path. */
#define MAX_PATH_WITH_SUFFIX 255
#define SECRET_SUFFIX "_secret"
#define FORTY_ZEROES "0000000000000000000000000000000000000000"

static int usage(void) {
  fprintf(stderr,
          "usage: czmq_certgen DIR NAME [KEY=VALUE...]\n"
          "       czmq_certgen --load FILE\n");
  return 2;
}

static int path_fits(const char* path) {
  return strlen(path) + strlen(SECRET_SUFFIX) <= MAX_PATH_WITH_SUFFIX;
}

static int generate(const char* dir, const char* name, int meta_count, char** meta) {
  char path[MAX_PATH_WITH_SUFFIX + 1];
  char secret_path[MAX_PATH_WITH_SUFFIX + 1];
  zcert_t* cert = NULL;
  const char* public_txt = NULL;
  int i = 0;

  if (*dir == '\0' || *name == '\0' || strchr(name, '/') != NULL) {
    fprintf(stderr, "czmq_certgen: DIR and NAME must be non-empty, NAME without '/'\n");
    return 2;
  }
  if (strlen(dir) + 1 + strlen(name) + strlen(SECRET_SUFFIX) > MAX_PATH_WITH_SUFFIX) {
    fprintf(stderr, "czmq_certgen: path too long for zcert_save\n");
    return 1;
  }
  /* Both fit: the length was checked above. */
  snprintf(path, sizeof path, "%s/%s", dir, name);
  snprintf(secret_path, sizeof secret_path, "%s/%s%s", dir, name, SECRET_SUFFIX);
  if (zsys_file_exists(path) || zsys_file_exists(secret_path)) {
    fprintf(stderr, "czmq_certgen: %s or its _secret file already exists\n", path);
    return 1;
  }

  cert = zcert_new();
  if (cert == NULL) {
    fprintf(stderr, "czmq_certgen: zcert_new failed\n");
    return 1;
  }
  public_txt = zcert_public_txt(cert);
  if (public_txt == NULL || strlen(public_txt) != 40 || strcmp(public_txt, FORTY_ZEROES) == 0) {
    fprintf(stderr, "czmq_certgen: zcert_new made no key pair\n");
    zcert_destroy(&cert);
    return 1;
  }
  for (i = 0; i < meta_count; i++) {
    char* equals = strchr(meta[i], '=');
    if (equals == NULL || equals == meta[i]) {
      fprintf(stderr, "czmq_certgen: metadata must be KEY=VALUE, got \"%s\"\n", meta[i]);
      zcert_destroy(&cert);
      return 2;
    }
    /* argv strings are writable: split KEY=VALUE in place. The value
     * goes through "%s": zcert_set_meta takes a format. */
    *equals = '\0';
    zcert_set_meta(cert, meta[i], "%s", equals + 1);
    *equals = '=';
  }

  /* zcert_save returns the secret file's status only, so both files are
   * checked for afterwards. */
  if (zcert_save(cert, path) != 0 || !zsys_file_exists(path) || !zsys_file_exists(secret_path)) {
    fprintf(stderr, "czmq_certgen: zcert_save(%s) failed\n", path);
    zcert_destroy(&cert);
    return 1;
  }
  printf("%s\n", public_txt);
  zcert_destroy(&cert);
  return fflush(stdout) == 0 ? 0 : 1;
}

static int load(const char* file) {
  zcert_t* cert = NULL;
  const char* public_txt = NULL;
  const char* secret_txt = NULL;
  const char* name = NULL;
  const char* secret_state = "mismatch";
  char derived[41];

  if (!path_fits(file)) {
    fprintf(stderr, "czmq_certgen: path too long for zcert_load\n");
    return 1;
  }
  cert = zcert_load(file);
  if (cert == NULL) {
    fprintf(stderr, "czmq_certgen: zcert_load(%s) failed\n", file);
    return 1;
  }
  public_txt = zcert_public_txt(cert);
  secret_txt = zcert_secret_txt(cert);
  name = zcert_meta(cert, "name");
  if (public_txt == NULL || strlen(public_txt) != 40 || secret_txt == NULL) {
    fprintf(stderr, "czmq_certgen: zcert_load(%s) gave no public key\n", file);
    zcert_destroy(&cert);
    return 1;
  }
  /* zcert_load leaves a missing secret key as 32 zero bytes. */
  if (strcmp(secret_txt, FORTY_ZEROES) == 0) {
    secret_state = "absent";
  } else if (zmq_curve_public(derived, secret_txt) == 0 && strcmp(derived, public_txt) == 0) {
    secret_state = "matches";
  }
  printf("public-key: %s\nname: %s\nsecret-key: %s\n", public_txt, name ? name : "", secret_state);
  zcert_destroy(&cert);
  return fflush(stdout) == 0 ? 0 : 1;
}

int main(int argc, char** argv) {
  if (!zsys_has_curve()) {
    fprintf(stderr, "czmq_certgen: libzmq was built without CURVE\n");
    return 1;
  }
  if (argc == 3 && strcmp(argv[1], "--load") == 0) return load(argv[2]);
  if (argc < 3 || argv[1][0] == '-') return usage();
  return generate(argv[1], argv[2], argc - 3, argv + 3);
}
