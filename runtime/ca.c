/* ca.c: CA minting, trust bundles and fingerprints with OpenSSL 3 (ca.h).
 *
 * Every file is written through one path: created with O_EXCL and its final
 * mode (so a key is never readable by others, not even for a moment), then
 * either left in place (a fresh name) or renamed over the old file (an
 * explicit replace). PEM goes straight from OpenSSL to the descriptor, so no
 * copy of a private key sits in our own buffers. */
#include "ca.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "util.h"

#define DEFAULT_DAYS 30
#define MAX_DAYS 36500
/* Guests and the host disagree about the time by seconds to minutes; an
 * hour of slack keeps a fresh CA valid for all of them. */
#define BACKDATE_SECONDS 3600
#define MAX_CN_BYTES 64     /* ub-common-name, RFC 5280 */
#define MAX_READ (64 << 20) /* no trust file is anywhere near this */

/* ---- errors ------------------------------------------------------------ */

__attribute__((format(printf, 3, 4))) static int fail(struct ca_error *err, const char *code,
                                                      const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
  err->code = code;
  return -1;
}

static int fail_errno(struct ca_error *err, int e, const char *what, const char *path) {
  return fail(err, errno_name(e), "%s %s: %s", what, path, strerror(e));
}

static void clear_error(struct ca_error *err) {
  err->code = NULL;
  err->message[0] = '\0';
}

/* `what` followed by OpenSSL's most recent error string; empties its queue
 * so the next call starts clean. */
__attribute__((format(printf, 2, 3))) static int fail_ssl(struct ca_error *err, const char *fmt, ...) {
  char what[700], ssl[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  unsigned long e = ERR_peek_last_error();
  if (e) ERR_error_string_n(e, ssl, sizeof ssl);
  else snprintf(ssl, sizeof ssl, "no OpenSSL error reported");
  ERR_clear_error();
  return fail(err, "ESSL", "%s: %s", what, ssl);
}

/* Certificates are never encrypted; refuse any password prompt OpenSSL
 * would otherwise put on the terminal. */
static int no_password(char *buf, int size, int rwflag, void *u) {
  (void)buf, (void)size, (void)rwflag, (void)u;
  return -1;
}

/* ---- files ------------------------------------------------------------- */

/* A new file with exactly `mode`. The umask can only narrow the mode open()
 * applies, so the file is never wider than asked; fchmod then restores what
 * the umask took away (a certificate is 0644 whatever the umask). */
static int create_exclusive(const char *path, mode_t mode) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode & 0777);
  if (fd < 0) return -1;
  if (fchmod(fd, mode) < 0) {
    int e = errno;
    close(fd);
    unlink(path);
    errno = e;
    return -1;
  }
  return fd;
}

/* Creates a fresh temporary file beside `path` (same directory, so the
 * final rename is atomic); its name goes to tmp. */
static int create_temp(const char *path, mode_t mode, char *tmp, size_t tmpsz) {
  const char *slash = strrchr(path, '/');
  int dirlen = slash ? (int)(slash - path + 1) : 0;
  const char *base = slash ? slash + 1 : path;
  for (int tries = 0; tries < 8; tries++) {
    unsigned char rnd[8];
    if (RAND_bytes(rnd, sizeof rnd) != 1) {
      errno = EIO;
      return -1;
    }
    char hex[sizeof rnd * 2 + 1];
    for (size_t i = 0; i < sizeof rnd; i++) snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
    if (snprintf(tmp, tmpsz, "%.*s.%s.tmp-%s", dirlen, path, base, hex) >= (int)tmpsz) {
      errno = ENAMETOOLONG;
      return -1;
    }
    int fd = create_exclusive(tmp, mode);
    if (fd >= 0 || errno != EEXIST) return fd;
  }
  return -1;
}

/* Reads a whole regular file (NUL-terminated for convenience). */
static int read_file(const char *path, const char *what, char **data, size_t *len, struct ca_error *err) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail_errno(err, errno, what, path);
  struct stat st;
  if (fstat(fd, &st) < 0) {
    int e = errno;
    close(fd);
    return fail_errno(err, e, what, path);
  }
  if (S_ISDIR(st.st_mode)) {
    close(fd);
    return fail_errno(err, EISDIR, what, path);
  }
  size_t cap = S_ISREG(st.st_mode) && st.st_size > 0 && st.st_size < MAX_READ ? (size_t)st.st_size + 2 : 4096, n = 0;
  char *buf = malloc(cap);
  for (;;) {
    if (!buf) {
      close(fd);
      return fail(err, "ENOMEM", "%s %s: out of memory", what, path);
    }
    if (n + 1 >= cap) {
      if (cap >= MAX_READ) {
        free(buf);
        close(fd);
        return fail(err, "EFBIG", "%s %s: larger than %d MiB", what, path, MAX_READ >> 20);
      }
      char *bigger = realloc(buf, cap * 2);
      if (!bigger) free(buf);
      buf = bigger;
      cap *= 2;
      continue;
    }
    ssize_t r = read(fd, buf + n, cap - n - 1);
    if (r < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      free(buf);
      close(fd);
      return fail_errno(err, e, what, path);
    }
    if (r == 0) break;
    n += (size_t)r;
  }
  close(fd);
  buf[n] = '\0';
  *data = buf;
  *len = n;
  return 0;
}

/* Writes data to path atomically (temp file + rename) with exactly `mode`. */
static int write_atomic(const char *path, const void *data, size_t len, mode_t mode, const char *what,
                        struct ca_error *err) {
  char tmp[PATH_MAX];
  int fd = create_temp(path, mode, tmp, sizeof tmp);
  if (fd < 0) return fail_errno(err, errno, what, path);
  int rc = write_all(fd, data, len);
  int e = errno;
  if (close(fd) < 0 && rc == 0) {
    rc = -1;
    e = errno;
  }
  if (rc < 0) {
    unlink(tmp);
    return fail_errno(err, e, what, path);
  }
  if (rename(tmp, path) < 0) {
    e = errno;
    unlink(tmp);
    return fail_errno(err, e, what, path);
  }
  return 0;
}

static int is_regular_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* ---- minting ----------------------------------------------------------- */

static void format_fingerprint(const unsigned char *md, unsigned n, char out[CA_FINGERPRINT_SIZE]) {
  static const char hex[] = "0123456789ABCDEF";
  size_t o = 0;
  for (unsigned i = 0; i < n && o + 3 <= CA_FINGERPRINT_SIZE; i++) {
    if (i) out[o++] = ':';
    out[o++] = hex[md[i] >> 4];
    out[o++] = hex[md[i] & 15];
  }
  out[o] = '\0';
}

static int cert_fingerprint(X509 *x, char out[CA_FINGERPRINT_SIZE]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  if (!X509_digest(x, EVP_sha256(), md, &n)) return -1;
  format_fingerprint(md, n, out);
  return 0;
}

static EVP_PKEY *generate_key(enum ca_key_type type) {
  if (type == CA_KEY_RSA_2048) return EVP_RSA_gen(2048);
  return EVP_EC_gen("P-256");
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value) {
  X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);
  if (!ext) return 0;
  int ok = X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  return ok;
}

/* A random serial of up to 128 bits, never zero. BN_rand's number is
 * unsigned, so the encoded INTEGER is positive. */
static int set_random_serial(X509 *x) {
  BIGNUM *bn = BN_new();
  int ok = bn && BN_rand(bn, 128, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) &&
           (!BN_is_zero(bn) || BN_set_word(bn, 1)) && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
  BN_free(bn);
  return ok;
}

static X509 *build_cert(EVP_PKEY *pkey, const char *cn, int days) {
  X509 *x = X509_new();
  if (!x) return NULL;
  X509_NAME *name = X509_get_subject_name(x);
  X509V3_CTX ctx;
  int ok = X509_set_version(x, X509_VERSION_3) && set_random_serial(x) &&
           X509_gmtime_adj(X509_getm_notBefore(x), -BACKDATE_SECONDS) &&
           X509_time_adj_ex(X509_getm_notAfter(x), days, 0, NULL) &&
           X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) &&
           X509_set_issuer_name(x, name) && X509_set_pubkey(x, pkey);
  if (ok) {
    /* Self-signed: the certificate is its own issuer, so the subject key
     * identifier added first is what the authority key identifier names. */
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    ok = add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") &&
         add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign") &&
         add_ext(x, &ctx, NID_subject_key_identifier, "hash") &&
         add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always") &&
         X509_sign(x, pkey, EVP_sha256()) > 0;
  }
  if (!ok) {
    X509_free(x);
    return NULL;
  }
  return x;
}

/* SEC1 is OpenSSL's "traditional" form of an EC key: BEGIN EC PRIVATE KEY,
 * named curve and public point included, which is what Go's
 * x509.ParseECPrivateKey (pipelock's LoadCA) expects. */
static int write_key(BIO *b, EVP_PKEY *key, enum ca_key_format format) {
  if (format == CA_KEY_FORMAT_SEC1) return PEM_write_bio_PrivateKey_traditional(b, key, NULL, NULL, 0, NULL, NULL);
  return PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL);
}

static int write_pem(int fd, EVP_PKEY *key, enum ca_key_format format, X509 *cert) {
  BIO *b = BIO_new_fd(fd, BIO_NOCLOSE);
  if (!b) return 0;
  errno = 0;
  int ok = (!key || write_key(b, key, format)) &&
           (!cert || PEM_write_bio_X509(b, cert)) && BIO_flush(b) == 1;
  BIO_free(b);
  return ok;
}

struct mint_file {
  const char *path;
  mode_t mode;
  int with_key, with_cert;
  char target[PATH_MAX]; /* where it is written: path itself, or a temp beside it */
  int created;
};

static void remove_created(struct mint_file *files, int n) {
  for (int i = 0; i < n; i++)
    if (files[i].created) {
      unlink(files[i].target);
      files[i].created = 0;
    }
}

/* Writes the three files; on any failure removes every one it created. With
 * overwrite, everything is written to temps first and then renamed, so an
 * error while writing leaves the old files untouched. Without it, the final
 * names are created with O_EXCL, so a file that appeared since the caller's
 * check is still never replaced. */
static int write_files(struct mint_file *files, int n, EVP_PKEY *key, enum ca_key_format format, X509 *cert,
                       int overwrite, struct ca_error *err) {
  for (int i = 0; i < n; i++) {
    struct mint_file *f = &files[i];
    int fd;
    if (overwrite) {
      fd = create_temp(f->path, f->mode, f->target, sizeof f->target);
    } else {
      snprintf(f->target, sizeof f->target, "%s", f->path);
      fd = create_exclusive(f->target, f->mode);
    }
    if (fd < 0) {
      int e = errno;
      remove_created(files, n);
      if (e == EEXIST)
        return fail(err, "EEXIST", "mint: %s already exists (pass overwrite=true to replace it)", f->path);
      return fail_errno(err, e, "mint: cannot create", f->path);
    }
    f->created = 1;
    int ok = write_pem(fd, f->with_key ? key : NULL, format, f->with_cert ? cert : NULL);
    int e = errno;
    if (close(fd) < 0 && ok) {
      ok = 0;
      e = errno;
    }
    if (!ok) {
      remove_created(files, n);
      if (e) {
        ERR_clear_error();
        return fail_errno(err, e, "mint: cannot write", f->path);
      }
      return fail_ssl(err, "mint: cannot write %s", f->path);
    }
  }
  if (!overwrite) return 0;
  for (int i = 0; i < n; i++) {
    if (rename(files[i].target, files[i].path) < 0) {
      int e = errno;
      remove_created(files, n); /* the temps not yet renamed */
      return fail_errno(err, e, "mint: cannot replace", files[i].path);
    }
    files[i].created = 0;
  }
  return 0;
}

static int check_spec(const struct ca_mint_spec *spec, const char *cn, struct ca_error *err) {
  if (!spec->dir || !*spec->dir) return fail(err, "EINVAL", "mint: dir is required");
  if (!spec->name || !*spec->name) return fail(err, "EINVAL", "mint: name is required");
  if (strchr(spec->name, '/') || strcmp(spec->name, ".") == 0 || strcmp(spec->name, "..") == 0)
    return fail(err, "EINVAL", "mint: name '%s' must be a plain file name (no '/')", spec->name);
  if (!*cn || strlen(cn) > MAX_CN_BYTES)
    return fail(err, "EINVAL", "mint: common name '%s' must be 1 to %d bytes", cn, MAX_CN_BYTES);
  if (spec->days > MAX_DAYS) return fail(err, "EINVAL", "mint: days %d is more than %d", spec->days, MAX_DAYS);
  if (spec->key != CA_KEY_EC_P256 && spec->key != CA_KEY_RSA_2048)
    return fail(err, "EINVAL", "mint: unknown key type %d", (int)spec->key);
  if (spec->key_format != CA_KEY_FORMAT_DEFAULT && spec->key_format != CA_KEY_FORMAT_SEC1 &&
      spec->key_format != CA_KEY_FORMAT_PKCS8)
    return fail(err, "EINVAL", "mint: unknown key format %d", (int)spec->key_format);
  if (spec->key_format == CA_KEY_FORMAT_SEC1 && spec->key != CA_KEY_EC_P256)
    return fail(err, "EINVAL", "mint: the sec1 key format is for EC keys only");
  return 0;
}

int ca_mint(const struct ca_mint_spec *spec, struct ca_minted *out, struct ca_error *err) {
  clear_error(err);
  memset(out, 0, sizeof *out);
  char default_cn[MAX_CN_BYTES * 4];
  const char *cn = spec->common_name;
  if (!cn) {
    /* A long name truncates here but still fails the length check. */
    snprintf(default_cn, sizeof default_cn, "bottle %s CA", spec->name ? spec->name : "");
    cn = default_cn;
  }
  if (check_spec(spec, cn, err) < 0) return -1;
  int days = spec->days > 0 ? spec->days : DEFAULT_DAYS;
  enum ca_key_format format = spec->key_format;
  if (format == CA_KEY_FORMAT_DEFAULT) format = spec->key == CA_KEY_EC_P256 ? CA_KEY_FORMAT_SEC1 : CA_KEY_FORMAT_PKCS8;

  struct stat st;
  if (stat(spec->dir, &st) < 0) return fail_errno(err, errno, "mint: directory", spec->dir);
  if (!S_ISDIR(st.st_mode)) return fail_errno(err, ENOTDIR, "mint: directory", spec->dir);

  char *paths[3] = {out->cert, out->key, out->pem};
  const char *exts[3] = {"crt", "key", "pem"};
  int dirlen = (int)strlen(spec->dir);
  while (dirlen > 1 && spec->dir[dirlen - 1] == '/') dirlen--;
  for (int i = 0; i < 3; i++) {
    /* Leave room for the temp suffix used when replacing. */
    if (snprintf(paths[i], PATH_MAX, "%.*s/%s.%s", dirlen, spec->dir, spec->name, exts[i]) >= PATH_MAX - 40)
      return fail(err, "ENAMETOOLONG", "mint: path %s/%s.%s is too long", spec->dir, spec->name, exts[i]);
  }
  /* Fail before generating anything when a file is already there; the
   * O_EXCL create below still catches one that appears in between. */
  for (int i = 0; !spec->overwrite && i < 3; i++)
    if (lstat(paths[i], &st) == 0)
      return fail(err, "EEXIST", "mint: %s already exists (pass overwrite=true to replace it)", paths[i]);

  ERR_clear_error();
  EVP_PKEY *key = generate_key(spec->key);
  if (!key)
    return fail_ssl(err, "mint: generating the %s key for %s",
                    spec->key == CA_KEY_RSA_2048 ? "rsa-2048" : "ec-p256", out->key);
  X509 *cert = build_cert(key, cn, days);
  if (!cert) {
    EVP_PKEY_free(key);
    return fail_ssl(err, "mint: building the certificate for %s", out->cert);
  }
  /* The key first: it must never be missing while the certificate exists. */
  struct mint_file files[3] = {
      {.path = out->key, .mode = 0600, .with_key = 1},
      {.path = out->pem, .mode = 0600, .with_key = 1, .with_cert = 1},
      {.path = out->cert, .mode = 0644, .with_cert = 1},
  };
  int rc = cert_fingerprint(cert, out->fingerprint) < 0 ? fail_ssl(err, "mint: fingerprint of %s", out->cert)
                                                         : write_files(files, 3, key, format, cert, spec->overwrite, err);
  X509_free(cert);
  EVP_PKEY_free(key);
  return rc;
}

/* ---- reading certificates ---------------------------------------------- */

int ca_fingerprint(const char *cert_path, char out[CA_FINGERPRINT_SIZE], struct ca_error *err) {
  clear_error(err);
  out[0] = '\0';
  char *data;
  size_t len;
  if (read_file(cert_path, "fingerprint: cannot read", &data, &len, err) < 0) return -1;
  ERR_clear_error();
  BIO *b = BIO_new_mem_buf(data, (int)len);
  X509 *x = b ? PEM_read_bio_X509(b, NULL, no_password, NULL) : NULL;
  BIO_free(b);
  free(data);
  if (!x) return fail_ssl(err, "fingerprint: %s holds no PEM certificate", cert_path);
  int rc = cert_fingerprint(x, out) < 0 ? fail_ssl(err, "fingerprint: digest of %s", cert_path) : 0;
  X509_free(x);
  return rc;
}

int ca_system_roots(char *buf, size_t bufsz, struct ca_error *err) {
  clear_error(err);
  const char *env_name = X509_get_default_cert_file_env();
  const char *env = getenv(env_name);
  if (env && *env) {
    /* An explicit choice: a missing file is an error, not a reason to
     * quietly trust something else. */
    struct stat st;
    if (stat(env, &st) < 0) {
      int e = errno;
      return fail(err, errno_name(e), "system roots: %s=%s: %s", env_name, env, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) return fail(err, "EINVAL", "system roots: %s=%s: not a regular file", env_name, env);
    if (snprintf(buf, bufsz, "%s", env) >= (int)bufsz) return fail(err, "ENAMETOOLONG", "system roots: path too long");
    return 0;
  }
  const char *cands[] = {X509_get_default_cert_file(), "/etc/ssl/certs/ca-certificates.crt",
                         "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"};
  for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++) {
    if (cands[i] && is_regular_file(cands[i])) {
      if (snprintf(buf, bufsz, "%s", cands[i]) >= (int)bufsz)
        return fail(err, "ENAMETOOLONG", "system roots: path too long");
      return 0;
    }
  }
  return fail(err, "ENOENT", "system roots: none found (set %s; looked at %s, %s, %s, %s)", env_name,
              cands[0] ? cands[0] : "(no OpenSSL default)", cands[1], cands[2], cands[3]);
}

/* Appends every certificate of the PEM file at path to `to`; at least one
 * is required. Anything else in the file (a private key) is skipped. */
static int append_certs(BIO *to, const char *path, struct ca_error *err) {
  char *data;
  size_t len;
  if (read_file(path, "bundle: cannot read", &data, &len, err) < 0) return -1;
  ERR_clear_error();
  BIO *in = BIO_new_mem_buf(data, (int)len);
  int count = 0, rc = 0;
  X509 *x;
  while (in && (x = PEM_read_bio_X509(in, NULL, no_password, NULL)) != NULL) {
    int ok = PEM_write_bio_X509(to, x);
    X509_free(x);
    if (!ok) {
      rc = fail_ssl(err, "bundle: copying a certificate of %s", path);
      break;
    }
    count++;
  }
  if (rc == 0) {
    unsigned long e = ERR_peek_last_error();
    int clean_end = ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
    if (count == 0) rc = fail_ssl(err, "bundle: %s is not a PEM certificate", path);
    else if (e && !clean_end) rc = fail_ssl(err, "bundle: %s: a certificate does not parse", path);
  }
  ERR_clear_error();
  BIO_free(in);
  free(data);
  return rc;
}

int ca_bundle(const char *out, const char *const *extra, mode_t mode, struct ca_error *err) {
  clear_error(err);
  if (!out || !*out) return fail(err, "EINVAL", "bundle: out is required");
  char roots[PATH_MAX];
  if (ca_system_roots(roots, sizeof roots, err) < 0) return -1;
  char *data;
  size_t len;
  if (read_file(roots, "bundle: cannot read system roots", &data, &len, err) < 0) return -1;
  BIO *mem = BIO_new(BIO_s_mem());
  int rc = 0;
  if (!mem || (len > 0 && BIO_write(mem, data, (int)len) != (int)len) ||
      (len > 0 && data[len - 1] != '\n' && BIO_write(mem, "\n", 1) != 1))
    rc = fail_ssl(err, "bundle: buffering %s", roots);
  free(data);
  for (size_t i = 0; rc == 0 && extra && extra[i]; i++) rc = append_certs(mem, extra[i], err);
  if (rc == 0) {
    char *p;
    long n = BIO_get_mem_data(mem, &p);
    rc = write_atomic(out, p, n > 0 ? (size_t)n : 0, mode, "bundle: cannot write", err);
  }
  BIO_free(mem);
  return rc;
}
