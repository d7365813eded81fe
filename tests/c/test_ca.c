/* Unit tests for ca.c, checked by the real tools: `openssl verify`,
 * `openssl x509 -text`, a TLS handshake between `openssl s_server` with a
 * leaf signed by a minted CA and `curl --cacert`, and mitmproxy loading the
 * minted .pem. Every test works in its own temporary directory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "ca.h"
#include "net.h"
#include "proc.h"
#include "tap.h"

extern char **environ;

/* ---- helpers ------------------------------------------------------------ */

static char env_path[4096], env_home[4200];
/* Tools run with PATH only (and HOME for python): no proxy variables, no
 * SSL_CERT_FILE from the caller's environment. */
static const char *tool_env[] = {env_path, env_home, "LC_ALL=C", NULL};

static void setup_env(const char *home) {
  const char *p = getenv("PATH");
  snprintf(env_path, sizeof env_path, "PATH=%s", p && *p ? p : "/usr/bin:/bin");
  snprintf(env_home, sizeof env_home, "HOME=%s", home);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)ftw;
  return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static char tmp_root[256];

static void make_dir(char *out, size_t sz, const char *what) {
  snprintf(out, sz, "%s/%s.XXXXXX", tmp_root, what);
  if (!mkdtemp(out)) {
    perror("mkdtemp");
    abort();
  }
}

static int have(const char *prog) {
  char buf[4096];
  return proc_resolve(prog, tool_env, buf, sizeof buf) == 0;
}

static struct proc_result run(const char *const *argv) {
  struct proc_spec s;
  memset(&s, 0, sizeof s);
  s.argv = argv;
  s.envp = tool_env;
  s.timeout_ms = 60000;
  struct proc_result r;
  proc_run(&s, &r);
  return r;
}

/* Runs argv, expecting exit 0; reports stderr on failure. Returns stdout
 * (caller frees) or NULL. */
static char *run_ok(const char *const *argv) {
  struct proc_result r = run(argv);
  char *out = NULL;
  if (r.status == PROC_EXITED && r.code == 0) {
    out = r.out;
    r.out = NULL;
  } else {
    printf("#   %s exited %d: %s\n", argv[0], r.code, r.err);
  }
  proc_result_free(&r);
  return out;
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  size_t r;
  while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
    n += r;
    if (n + 1 >= cap) {
      char *bigger = realloc(buf, cap *= 2);
      if (!bigger) abort();
      buf = bigger;
    }
  }
  fclose(f);
  buf[n] = '\0';
  return buf;
}

static void spit(const char *path, const char *data) {
  FILE *f = fopen(path, "wb");
  if (!f) abort();
  fputs(data, f);
  fclose(f);
}

static int file_mode(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (int)(st.st_mode & 07777) : -1;
}

static int exists(const char *path) {
  struct stat st;
  return lstat(path, &st) == 0;
}

static int count(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
  return n;
}

static int dir_entries(const char *dir) {
  DIR *d = opendir(dir);
  int n = 0;
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
  if (d) closedir(d);
  return n;
}

/* The value `openssl x509 -fingerprint -sha256` prints after '='. */
static char *openssl_fingerprint(const char *cert) {
  const char *argv[] = {"openssl", "x509", "-in", cert, "-noout", "-fingerprint", "-sha256", NULL};
  char *out = run_ok(argv);
  if (!out) return NULL;
  char *eq = strchr(out, '=');
  char *fp = eq ? strdup(eq + 1) : NULL;
  free(out);
  if (fp) fp[strcspn(fp, "\r\n")] = '\0';
  return fp;
}

static int openssl_verify(const char *cafile, const char *cert) {
  const char *argv[] = {"openssl", "verify", "-CAfile", cafile, cert, NULL};
  struct proc_result r = run(argv);
  int ok = r.status == PROC_EXITED && r.code == 0 && strstr(r.out, ": OK") != NULL;
  proc_result_free(&r);
  return ok;
}

static char *public_key_of(const char *path, int is_cert) {
  const char *cert_argv[] = {"openssl", "x509", "-in", path, "-noout", "-pubkey", NULL};
  const char *key_argv[] = {"openssl", "pkey", "-in", path, "-pubout", NULL};
  return run_ok(is_cert ? cert_argv : key_argv);
}

static int mint(const char *dir, const char *name, enum ca_key_type key, int overwrite, struct ca_minted *out,
                struct ca_error *err) {
  struct ca_mint_spec spec = {.dir = dir, .name = name, .key = key, .overwrite = overwrite};
  return ca_mint(&spec, out, err);
}

/* A server leaf for `host` signed by the CA, made with the openssl CLI. */
static int make_leaf(const char *dir, const struct ca_minted *ca, const char *host, char *crt, char *key) {
  char csr[4096], ext[4096], subj[300], san[300];
  snprintf(crt, 4096, "%s/leaf.crt", dir);
  snprintf(key, 4096, "%s/leaf.key", dir);
  snprintf(csr, sizeof csr, "%s/leaf.csr", dir);
  snprintf(ext, sizeof ext, "%s/leaf.ext", dir);
  snprintf(subj, sizeof subj, "/CN=%s", host);
  snprintf(san, sizeof san,
           "subjectAltName=DNS:%s\nbasicConstraints=critical,CA:FALSE\n"
           "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
           host);
  spit(ext, san);
  const char *req[] = {"openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                       "-keyout", key, "-out", csr, "-subj", subj, NULL};
  const char *sign[] = {"openssl", "x509", "-req", "-in", csr, "-CA", ca->cert, "-CAkey", ca->key,
                        "-set_serial", "0x5eed", "-days", "1", "-sha256", "-extfile", ext, "-out", crt, NULL};
  char *a = run_ok(req);
  if (!a) return -1;
  free(a);
  char *b = run_ok(sign);
  if (!b) return -1;
  free(b);
  return 0;
}

static void need_openssl(void) {
  if (!have("openssl")) SKIP("the openssl command is not installed");
}

/* ---- minting ------------------------------------------------------------ */

/* SEC1 as Go's x509.ParseECPrivateKey reads it (RFC 5915): version 1, the
 * private octets, [0] the named curve P-256, [1] the public point. */
static void check_sec1(const char *key_path) {
  const char *argv[] = {"openssl", "asn1parse", "-in", key_path, NULL};
  char *out = run_ok(argv);
  CHECK(out != NULL);
  if (!out) return;
  CHECK(strstr(out, "INTEGER           :01"), "%s", out);
  CHECK(strstr(out, "OCTET STRING"), "%s", out);
  CHECK(strstr(out, "cont [ 0 ]") && strstr(out, "prime256v1"), "%s", out);
  CHECK(strstr(out, "cont [ 1 ]") && strstr(out, "BIT STRING"), "%s", out);
  CHECK(!strstr(out, "id-ecPublicKey"), "a PKCS#8 wrapper names id-ecPublicKey: %s", out);
  free(out);
}

static void check_minted_ca(const struct ca_minted *m, const char *cn, int rsa) {
  CHECK(openssl_verify(m->cert, m->cert), "openssl verify -CAfile %s %s", m->cert, m->cert);

  const char *text_argv[] = {"openssl", "x509", "-in", m->cert, "-noout", "-text", NULL};
  char *text = run_ok(text_argv);
  CHECK(text != NULL);
  if (text) {
    char subject[200], issuer[200];
    snprintf(subject, sizeof subject, "Subject: CN = %s\n", cn);
    snprintf(issuer, sizeof issuer, "Issuer: CN = %s\n", cn);
    CHECK(strstr(text, "Version: 3 (0x2)"), "%s", text);
    CHECK(strstr(text, subject), "want '%s' in:\n%s", subject, text);
    CHECK(strstr(text, issuer), "want '%s'", issuer);
    CHECK(strstr(text, "X509v3 Basic Constraints: critical\n                CA:TRUE"), "%s", text);
    CHECK(strstr(text, "X509v3 Key Usage: critical\n                Certificate Sign, CRL Sign\n"), "%s", text);
    CHECK(strstr(text, "X509v3 Subject Key Identifier"), "%s", text);
    CHECK(strstr(text, "X509v3 Authority Key Identifier"), "%s", text);
    CHECK(!strstr(text, "(Negative)"), "serial must be positive");
    if (rsa) {
      CHECK(strstr(text, "Public-Key: (2048 bit)"), "%s", text);
      CHECK(count(text, "Signature Algorithm: sha256WithRSAEncryption") == 2, "%s", text);
    } else {
      CHECK(strstr(text, "Public-Key: (256 bit)"), "%s", text);
      CHECK(strstr(text, "NIST CURVE: P-256"), "%s", text);
      CHECK(count(text, "Signature Algorithm: ecdsa-with-SHA256") == 2, "%s", text);
    }
    /* The authority key identifier names the certificate's own key. */
    const char *ski = strstr(text, "X509v3 Subject Key Identifier: \n");
    const char *aki = strstr(text, "X509v3 Authority Key Identifier: \n");
    if (ski && aki) {
      ski = strchr(ski, '\n') + 1;
      aki = strchr(aki, '\n') + 1;
      while (*ski == ' ') ski++;
      while (*aki == ' ') aki++;
      if (strncmp(aki, "keyid:", 6) == 0) aki += 6;
      CHECK(strncmp(ski, aki, strcspn(ski, "\n")) == 0, "SKI %.60s vs AKI %.60s", ski, aki);
    }
    free(text);
  }

  const char *serial_argv[] = {"openssl", "x509", "-in", m->cert, "-noout", "-serial", NULL};
  char *serial = run_ok(serial_argv);
  CHECK(serial && strncmp(serial, "serial=", 7) == 0);
  if (serial) {
    size_t hex = strcspn(serial + 7, "\n");
    CHECK(hex >= 20 && hex <= 32, "serial %s: want about 128 random bits", serial);
    free(serial);
  }

  /* The fingerprint we report is the one openssl prints, for every file
   * that holds the certificate. */
  char *fp = openssl_fingerprint(m->cert);
  CHECK_STR(m->fingerprint, fp);
  free(fp);
  fp = openssl_fingerprint(m->pem);
  CHECK_STR(m->fingerprint, fp);
  free(fp);
  char ours[CA_FINGERPRINT_SIZE];
  struct ca_error err;
  CHECK_INT(ca_fingerprint(m->cert, ours, &err), 0);
  CHECK_STR(ours, m->fingerprint);

  /* Key files: an EC key in SEC1 (the only form pipelock's LoadCA parses;
   * mitmproxy reads it too), RSA in PKCS#8, matching the certificate; the
   * .pem has the key first, then the certificate. */
  const char *begin = rsa ? "-----BEGIN PRIVATE KEY-----\n" : "-----BEGIN EC PRIVATE KEY-----\n";
  char *key = slurp(m->key), *pem = slurp(m->pem);
  CHECK(key && strncmp(key, begin, strlen(begin)) == 0, "%.40s", key ? key : "(none)");
  CHECK(key && !strstr(key, "CERTIFICATE"));
  if (!rsa) check_sec1(m->key);
  const char *pk = pem ? strstr(pem, begin) : NULL;
  const char *pc = pem ? strstr(pem, "-----BEGIN CERTIFICATE-----") : NULL;
  CHECK(pk == pem && pc && pc > pk, "the .pem must be the key followed by the certificate");
  free(key);
  free(pem);
  char *cert_pub = public_key_of(m->cert, 1), *key_pub = public_key_of(m->key, 0), *pem_pub = public_key_of(m->pem, 0);
  CHECK(cert_pub && key_pub && strcmp(cert_pub, key_pub) == 0, "key does not match certificate");
  CHECK(cert_pub && pem_pub && strcmp(cert_pub, pem_pub) == 0, ".pem key does not match certificate");
  free(cert_pub);
  free(key_pub);
  free(pem_pub);
}

static int checkend(const char *cert, long seconds) {
  char secs[32];
  snprintf(secs, sizeof secs, "%ld", seconds);
  const char *argv[] = {"openssl", "x509", "-in", cert, "-noout", "-checkend", secs, NULL};
  struct proc_result r = run(argv);
  int code = r.code;
  proc_result_free(&r);
  return code; /* 0: still valid then */
}

/* Seconds from the certificate's notBefore to now. */
static long backdated_by(const char *cert) {
  FILE *f = fopen(cert, "r");
  if (!f) return -1;
  X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
  fclose(f);
  if (!x) return -1;
  int days = 0, secs = 0;
  long r = ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x), NULL) ? (long)days * 86400 + secs : -1;
  X509_free(x);
  return r;
}

static void test_mint_ec_p256(void) {
  need_openssl();
  char dir[300];
  make_dir(dir, sizeof dir, "mint-ec");
  struct ca_minted m;
  struct ca_error err;
  mode_t old = umask(0); /* modes must come from the code, not the umask */
  int rc = mint(dir, "pipelock", CA_KEY_EC_P256, 0, &m, &err);
  umask(old);
  CHECK_INT(rc, 0);
  if (rc) {
    printf("#   %s (%s)\n", err.message, err.code);
    return;
  }
  char want[400];
  snprintf(want, sizeof want, "%s/pipelock.crt", dir);
  CHECK_STR(m.cert, want);
  snprintf(want, sizeof want, "%s/pipelock.key", dir);
  CHECK_STR(m.key, want);
  snprintf(want, sizeof want, "%s/pipelock.pem", dir);
  CHECK_STR(m.pem, want);
  CHECK_INT(file_mode(m.cert), 0644);
  CHECK_INT(file_mode(m.key), 0600);
  CHECK_INT(file_mode(m.pem), 0600);
  CHECK_INT(strlen(m.fingerprint), 95);
  check_minted_ca(&m, "bottle pipelock CA", 0);

  /* Valid from an hour ago (clock skew) to 30 days from now. */
  long back = backdated_by(m.cert);
  CHECK(back >= 3590 && back <= 3700, "notBefore is %ld s ago", back);
  CHECK_INT(checkend(m.cert, 0), 0);
  CHECK_INT(checkend(m.cert, 29L * 86400), 0);
  CHECK(checkend(m.cert, 31L * 86400) != 0, "must expire within 31 days");
  nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void test_mint_rsa_2048(void) {
  need_openssl();
  char dir[300];
  make_dir(dir, sizeof dir, "mint-rsa");
  struct ca_mint_spec spec = {.dir = dir, .name = "egress", .common_name = "Example Egress CA", .days = 7,
                              .key = CA_KEY_RSA_2048};
  struct ca_minted m;
  struct ca_error err;
  mode_t old = umask(077); /* a strict umask must not narrow the certificate */
  int rc = ca_mint(&spec, &m, &err);
  umask(old);
  CHECK_INT(rc, 0);
  if (rc) {
    printf("#   %s (%s)\n", err.message, err.code);
    return;
  }
  CHECK_INT(file_mode(m.cert), 0644);
  CHECK_INT(file_mode(m.key), 0600);
  CHECK_INT(file_mode(m.pem), 0600);
  check_minted_ca(&m, "Example Egress CA", 1);
  CHECK_INT(checkend(m.cert, 6L * 86400), 0);
  CHECK(checkend(m.cert, 8L * 86400) != 0, "days=7 must expire within 8 days");
  nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void test_mints_differ(void) {
  need_openssl();
  char dir[300];
  make_dir(dir, sizeof dir, "mint-two");
  struct ca_minted a, b;
  struct ca_error err;
  CHECK_INT(mint(dir, "a", CA_KEY_EC_P256, 0, &a, &err), 0);
  CHECK_INT(mint(dir, "b", CA_KEY_EC_P256, 0, &b, &err), 0);
  CHECK(strcmp(a.fingerprint, b.fingerprint) != 0);
  const char *sa[] = {"openssl", "x509", "-in", a.cert, "-noout", "-serial", NULL};
  const char *sb[] = {"openssl", "x509", "-in", b.cert, "-noout", "-serial", NULL};
  char *x = run_ok(sa), *y = run_ok(sb);
  CHECK(x && y && strcmp(x, y) != 0, "two CAs with serial %s", x ? x : "?");
  free(x);
  free(y);
  /* One CA does not vouch for the other. */
  CHECK(!openssl_verify(a.cert, b.cert), "a's CA file must not verify b");
  nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void test_mint_refuses_to_overwrite(void) {
  need_openssl();
  char dir[300];
  make_dir(dir, sizeof dir, "mint-exist");
  struct ca_minted first, again;
  struct ca_error err;
  CHECK_INT(mint(dir, "ca", CA_KEY_EC_P256, 0, &first, &err), 0);

  CHECK_INT(mint(dir, "ca", CA_KEY_EC_P256, 0, &again, &err), -1);
  CHECK_STR(err.code, "EEXIST");
  CHECK(strstr(err.message, first.cert) != NULL, "message '%s' should name the file", err.message);
  char fp[CA_FINGERPRINT_SIZE];
  CHECK_INT(ca_fingerprint(first.cert, fp, &err), 0);
  CHECK_STR(fp, first.fingerprint);

  /* Any one of the three files is enough to refuse, and nothing is made. */
  unlink(first.cert);
  unlink(first.key);
  CHECK_INT(mint(dir, "ca", CA_KEY_EC_P256, 0, &again, &err), -1);
  CHECK_STR(err.code, "EEXIST");
  CHECK(strstr(err.message, first.pem) != NULL, "message '%s'", err.message);
  CHECK(!exists(first.cert) && !exists(first.key), "a refused mint must create nothing");
  CHECK_INT(dir_entries(dir), 1);

  /* A symlink planted at a target name is refused, not followed. */
  unlink(first.pem);
  char target[400];
  snprintf(target, sizeof target, "%s/elsewhere", dir);
  CHECK_INT(symlink(target, first.key), 0);
  CHECK_INT(mint(dir, "ca", CA_KEY_EC_P256, 0, &again, &err), -1);
  CHECK_STR(err.code, "EEXIST");
  CHECK(!exists(target), "the symlink's target must not be created");
  unlink(first.key);
  nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void test_mint_overwrite_replaces(void) {
  need_openssl();
  char dir[300];
  make_dir(dir, sizeof dir, "mint-over");
  struct ca_minted first, second;
  struct ca_error err;
  CHECK_INT(mint(dir, "ca", CA_KEY_EC_P256, 0, &first, &err), 0);
  /* Loosen the old files: the replacements must have their own modes. */
  chmod(first.key, 0644);
  chmod(first.pem, 0644);
  mode_t old = umask(0);
  int rc = mint(dir, "ca", CA_KEY_RSA_2048, 1, &second, &err);
  umask(old);
  CHECK_INT(rc, 0);
  if (rc) {
    printf("#   %s (%s)\n", err.message, err.code);
    return;
  }
  CHECK(strcmp(first.fingerprint, second.fingerprint) != 0);
  CHECK_INT(file_mode(second.cert), 0644);
  CHECK_INT(file_mode(second.key), 0600);
  CHECK_INT(file_mode(second.pem), 0600);
  CHECK_INT(dir_entries(dir), 3); /* no temporary file left behind */
  check_minted_ca(&second, "bottle ca CA", 1);
  nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* key_format pkcs8 on an EC key: the form pipelock refuses, still
 * available for tools that want it. */
static void test_mint_ec_pkcs8(void) {
  need_openssl();
  char dir[300];
  make_dir(dir, sizeof dir, "mint-ec-pkcs8");
  struct ca_minted m;
  struct ca_error err;
  struct ca_mint_spec spec = {.dir = dir, .name = "ca", .key = CA_KEY_EC_P256, .key_format = CA_KEY_FORMAT_PKCS8};
  CHECK_INT(ca_mint(&spec, &m, &err), 0);
  char *key = slurp(m.key), *pem = slurp(m.pem);
  CHECK(key && strncmp(key, "-----BEGIN PRIVATE KEY-----\n", 28) == 0, "%.40s", key ? key : "(none)");
  CHECK(pem && strncmp(pem, "-----BEGIN PRIVATE KEY-----\n", 28) == 0);
  free(key);
  free(pem);
  char *cert_pub = public_key_of(m.cert, 1), *key_pub = public_key_of(m.key, 0);
  CHECK(cert_pub && key_pub && strcmp(cert_pub, key_pub) == 0, "key does not match certificate");
  free(cert_pub);
  free(key_pub);
  nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void test_mint_bad_arguments(void) {
  char dir[300], file[400];
  make_dir(dir, sizeof dir, "mint-bad");
  struct ca_minted m;
  struct ca_error err;
  CHECK_INT(mint(dir, "a/b", CA_KEY_EC_P256, 0, &m, &err), -1);
  CHECK_STR(err.code, "EINVAL");
  CHECK_INT(mint(dir, "..", CA_KEY_EC_P256, 0, &m, &err), -1);
  CHECK_STR(err.code, "EINVAL");
  CHECK_INT(mint(dir, "", CA_KEY_EC_P256, 0, &m, &err), -1);
  CHECK_STR(err.code, "EINVAL");

  char long_cn[80];
  memset(long_cn, 'x', 65);
  long_cn[65] = '\0';
  struct ca_mint_spec spec = {.dir = dir, .name = "ok", .common_name = long_cn};
  CHECK_INT(ca_mint(&spec, &m, &err), -1);
  CHECK_STR(err.code, "EINVAL");
  CHECK(strstr(err.message, "common name") != NULL, "%s", err.message);

  struct ca_mint_spec rsa_sec1 = {.dir = dir, .name = "ok", .key = CA_KEY_RSA_2048, .key_format = CA_KEY_FORMAT_SEC1};
  CHECK_INT(ca_mint(&rsa_sec1, &m, &err), -1);
  CHECK_STR(err.code, "EINVAL");
  CHECK(strstr(err.message, "sec1") != NULL, "%s", err.message);

  snprintf(file, sizeof file, "%s/missing", dir);
  CHECK_INT(mint(file, "ca", CA_KEY_EC_P256, 0, &m, &err), -1);
  CHECK_STR(err.code, "ENOENT");
  CHECK(strstr(err.message, file) != NULL, "%s", err.message);

  snprintf(file, sizeof file, "%s/plain", dir);
  spit(file, "x");
  CHECK_INT(mint(file, "ca", CA_KEY_EC_P256, 0, &m, &err), -1);
  CHECK_STR(err.code, "ENOTDIR");

  /* A directory we cannot write to: the error names the file. */
  if (geteuid() != 0) {
    char ro[400];
    snprintf(ro, sizeof ro, "%s/ro", dir);
    mkdir(ro, 0500);
    CHECK_INT(mint(ro, "ca", CA_KEY_EC_P256, 0, &m, &err), -1);
    CHECK_STR(err.code, "EACCES");
    CHECK(strstr(err.message, "/ro/ca.key") != NULL, "%s", err.message);
    chmod(ro, 0700);
  }
  CHECK_INT(dir_entries(dir), geteuid() != 0 ? 2 : 1);
  nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* The minted .pem is what egress's mitmproxy loads as its confdir CA; have
 * the real mitmproxy load it and sign a leaf, then check that leaf. */
static void test_mitmproxy_loads_pem(void) {
  need_openssl();
  const char *python = NULL;
  const char *cands[] = {"/usr/bin/python3", "python3"};
  for (size_t i = 0; i < 2 && !python; i++) {
    const char *argv[] = {cands[i], "-c", "import mitmproxy.certs", NULL};
    struct proc_result r = run(argv);
    if (r.status == PROC_EXITED && r.code == 0) python = cands[i];
    proc_result_free(&r);
  }
  if (!python) SKIP("no python3 with mitmproxy");
  char dir[300], dh[400], leaf[400];
  make_dir(dir, sizeof dir, "mint-mitm");
  struct ca_minted m;
  struct ca_error err;
  CHECK_INT(mint(dir, "egress", CA_KEY_EC_P256, 0, &m, &err), 0);
  snprintf(dh, sizeof dh, "%s/dhparam.pem", dir);
  const char *script =
      "import sys\n"
      "from pathlib import Path\n"
      "from mitmproxy.certs import CertStore\n"
      "store = CertStore.from_files(Path(sys.argv[1]), Path(sys.argv[2]))\n"
      "entry = store.get_cert('example.test', ['example.test'])\n"
      "sys.stdout.write(entry.cert.to_pem().decode())\n";
  const char *argv[] = {python, "-c", script, m.pem, dh, NULL};
  char *pem = run_ok(argv);
  CHECK(pem && strstr(pem, "-----BEGIN CERTIFICATE-----"), "mitmproxy did not sign a leaf");
  if (pem) {
    snprintf(leaf, sizeof leaf, "%s/leaf.crt", dir);
    spit(leaf, pem);
    CHECK(openssl_verify(m.cert, leaf), "mitmproxy's leaf must verify against the minted CA");
    free(pem);
  }
  nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* ---- fingerprints and roots -------------------------------------------- */

static void test_fingerprint_errors(void) {
  need_openssl();
  char dir[300], missing[400], text[400];
  make_dir(dir, sizeof dir, "fp");
  struct ca_minted m;
  struct ca_error err;
  char fp[CA_FINGERPRINT_SIZE];
  CHECK_INT(mint(dir, "ca", CA_KEY_EC_P256, 0, &m, &err), 0);
  snprintf(missing, sizeof missing, "%s/missing.crt", dir);
  CHECK_INT(ca_fingerprint(missing, fp, &err), -1);
  CHECK_STR(err.code, "ENOENT");
  CHECK(strstr(err.message, missing) != NULL, "%s", err.message);
  CHECK_INT(ca_fingerprint(m.key, fp, &err), -1);
  CHECK_STR(err.code, "ESSL");
  CHECK(strstr(err.message, m.key) && strstr(err.message, "no start line"), "%s", err.message);
  snprintf(text, sizeof text, "%s/text", dir);
  spit(text, "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n");
  CHECK_INT(ca_fingerprint(text, fp, &err), -1);
  CHECK_STR(err.code, "ESSL");
  CHECK_INT(ca_fingerprint(dir, fp, &err), -1);
  CHECK_STR(err.code, "EISDIR");
  nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void test_system_roots_lookup(void) {
  char dir[300], file[400], buf[4096];
  make_dir(dir, sizeof dir, "roots");
  struct ca_error err;
  const char *saved = getenv("SSL_CERT_FILE");
  char *keep = saved ? strdup(saved) : NULL;

  snprintf(file, sizeof file, "%s/roots.pem", dir);
  spit(file, "");
  setenv("SSL_CERT_FILE", file, 1);
  CHECK_INT(ca_system_roots(buf, sizeof buf, &err), 0);
  CHECK_STR(buf, file);

  /* An explicit SSL_CERT_FILE that is missing is an error, not a fallback. */
  snprintf(file, sizeof file, "%s/missing.pem", dir);
  setenv("SSL_CERT_FILE", file, 1);
  CHECK_INT(ca_system_roots(buf, sizeof buf, &err), -1);
  CHECK_STR(err.code, "ENOENT");
  CHECK(strstr(err.message, "SSL_CERT_FILE") && strstr(err.message, file), "%s", err.message);

  unsetenv("SSL_CERT_FILE");
  if (ca_system_roots(buf, sizeof buf, &err) == 0) {
    struct stat st;
    CHECK(stat(buf, &st) == 0 && S_ISREG(st.st_mode), "%s", buf);
    char *roots = slurp(buf);
    CHECK(roots && count(roots, "-----BEGIN CERTIFICATE-----") > 10, "%s holds few roots", buf);
    free(roots);
  } else {
    CHECK_STR(err.code, "ENOENT");
  }
  if (keep) setenv("SSL_CERT_FILE", keep, 1);
  free(keep);
  nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* ---- bundles ------------------------------------------------------------ */

static void test_bundle_roots_plus_extra(void) {
  need_openssl();
  char roots[4096];
  struct ca_error err;
  if (ca_system_roots(roots, sizeof roots, &err) < 0) SKIP("no system trust roots: %s", err.message);
  char *roots_pem = slurp(roots);
  if (!roots_pem || count(roots_pem, "-----BEGIN CERTIFICATE-----") == 0) {
    free(roots_pem);
    SKIP("%s holds no certificates", roots);
  }
  char dir[300], bundle[400], crt[4096], key[4096], first[400];
  make_dir(dir, sizeof dir, "bundle");
  struct ca_minted ca, ca2;
  CHECK_INT(mint(dir, "pipelock", CA_KEY_EC_P256, 0, &ca, &err), 0);
  CHECK_INT(mint(dir, "second", CA_KEY_RSA_2048, 0, &ca2, &err), 0);
  CHECK_INT(make_leaf(dir, &ca, "upstream.test", crt, key), 0);

  /* The key+cert .pem is given on purpose: only its certificate may land
   * in the bundle. */
  snprintf(bundle, sizeof bundle, "%s/upstream-ca.pem", dir);
  const char *extra[] = {ca.pem, ca2.cert, NULL};
  mode_t old = umask(077);
  int rc = ca_bundle(bundle, extra, 0644, &err);
  umask(old);
  CHECK_INT(rc, 0);
  if (rc) printf("#   %s (%s)\n", err.message, err.code);
  char *out = slurp(bundle);
  CHECK(out != NULL);
  if (out) {
    size_t rlen = strlen(roots_pem);
    CHECK(strncmp(out, roots_pem, rlen) == 0, "the bundle must start with the system roots");
    CHECK_INT(count(out, "-----BEGIN CERTIFICATE-----"), count(roots_pem, "-----BEGIN CERTIFICATE-----") + 2);
    CHECK(!strstr(out, "PRIVATE KEY"), "a private key leaked into the bundle");
    char *ca_pem = slurp(ca.cert);
    CHECK(ca_pem && strstr(out + rlen, ca_pem), "the extra CA is not in the bundle");
    free(ca_pem);
  }
  free(out);
  CHECK_INT(file_mode(bundle), 0644);
  CHECK_INT(dir_entries(dir), 11); /* 2x3 CA files, leaf crt/key/csr/ext, bundle */

  /* The extra CA is trusted through the bundle and not without it; the
   * public roots stay trusted. */
  CHECK(openssl_verify(bundle, crt), "a leaf of the extra CA must verify against the bundle");
  CHECK(!openssl_verify(roots, crt), "the leaf must not verify against the system roots alone");
  snprintf(first, sizeof first, "%s/first-root.pem", dir);
  const char *first_argv[] = {"openssl", "x509", "-in", roots, "-out", first, NULL};
  char *o = run_ok(first_argv);
  free(o);
  CHECK(openssl_verify(bundle, first), "a system root must still verify against the bundle");

  /* mode is honoured exactly, and a rewrite replaces the file. */
  old = umask(0);
  const char *just_one[] = {ca.cert, NULL};
  CHECK_INT(ca_bundle(bundle, just_one, 0600, &err), 0);
  umask(old);
  CHECK_INT(file_mode(bundle), 0600);
  out = slurp(bundle);
  CHECK(out && count(out, "-----BEGIN CERTIFICATE-----") == count(roots_pem, "-----BEGIN CERTIFICATE-----") + 1);
  free(out);

  /* No extras: just the roots. */
  CHECK_INT(ca_bundle(bundle, NULL, 0644, &err), 0);
  out = slurp(bundle);
  CHECK(out && count(out, "-----BEGIN CERTIFICATE-----") == count(roots_pem, "-----BEGIN CERTIFICATE-----"));
  free(out);
  free(roots_pem);
  nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void test_bundle_uses_ssl_cert_file(void) {
  need_openssl();
  char dir[300], roots[400], bundle[400];
  make_dir(dir, sizeof dir, "bundle-env");
  struct ca_minted a, b;
  struct ca_error err;
  CHECK_INT(mint(dir, "a", CA_KEY_EC_P256, 0, &a, &err), 0);
  CHECK_INT(mint(dir, "b", CA_KEY_EC_P256, 0, &b, &err), 0);
  /* A roots file without a final newline must not glue two PEM lines. */
  char *a_pem = slurp(a.cert);
  a_pem[strlen(a_pem) - 1] = '\0';
  snprintf(roots, sizeof roots, "%s/roots.pem", dir);
  spit(roots, a_pem);
  free(a_pem);
  const char *saved = getenv("SSL_CERT_FILE");
  char *keep = saved ? strdup(saved) : NULL;
  setenv("SSL_CERT_FILE", roots, 1);
  snprintf(bundle, sizeof bundle, "%s/bundle.pem", dir);
  const char *extra[] = {b.cert, NULL};
  CHECK_INT(ca_bundle(bundle, extra, 0644, &err), 0);
  if (keep) setenv("SSL_CERT_FILE", keep, 1);
  else unsetenv("SSL_CERT_FILE");
  free(keep);
  CHECK(openssl_verify(bundle, a.cert), "root a from SSL_CERT_FILE");
  CHECK(openssl_verify(bundle, b.cert), "extra b");
  char *out = slurp(bundle);
  CHECK(out && count(out, "-----BEGIN CERTIFICATE-----") == 2 && count(out, "-----END CERTIFICATE-----") == 2);
  free(out);
  nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void test_bundle_rejects_bad_extra(void) {
  need_openssl();
  char roots[4096];
  struct ca_error err;
  if (ca_system_roots(roots, sizeof roots, &err) < 0) SKIP("no system trust roots: %s", err.message);
  char dir[300], bundle[400], text[400], missing[400], broken[400];
  make_dir(dir, sizeof dir, "bundle-bad");
  struct ca_minted ca;
  CHECK_INT(mint(dir, "ca", CA_KEY_EC_P256, 0, &ca, &err), 0);
  snprintf(bundle, sizeof bundle, "%s/bundle.pem", dir);

  const char *key_only[] = {ca.cert, ca.key, NULL};
  CHECK_INT(ca_bundle(bundle, key_only, 0644, &err), -1);
  CHECK_STR(err.code, "ESSL");
  CHECK(strstr(err.message, ca.key) && strstr(err.message, "not a PEM certificate"), "%s", err.message);

  snprintf(text, sizeof text, "%s/notes.txt", dir);
  spit(text, "hello\n");
  const char *plain[] = {text, NULL};
  CHECK_INT(ca_bundle(bundle, plain, 0644, &err), -1);
  CHECK_STR(err.code, "ESSL");
  CHECK(strstr(err.message, text) != NULL, "%s", err.message);

  snprintf(missing, sizeof missing, "%s/missing.crt", dir);
  const char *gone[] = {missing, NULL};
  CHECK_INT(ca_bundle(bundle, gone, 0644, &err), -1);
  CHECK_STR(err.code, "ENOENT");
  CHECK(strstr(err.message, missing) != NULL, "%s", err.message);

  /* A good certificate followed by a damaged one: refused, not cut short. */
  char *good = slurp(ca.cert);
  size_t glen = strlen(good);
  char *two = malloc(glen * 2 + 64);
  snprintf(two, glen * 2 + 64, "%s%s", good, good);
  char *body = strstr(two + glen, "\n") + 1;
  body[10] = '!';
  body[11] = '!';
  snprintf(broken, sizeof broken, "%s/broken.pem", dir);
  spit(broken, two);
  free(good);
  free(two);
  const char *damaged[] = {broken, NULL};
  CHECK_INT(ca_bundle(bundle, damaged, 0644, &err), -1);
  CHECK_STR(err.code, "ESSL");
  CHECK(strstr(err.message, broken) != NULL, "%s", err.message);

  CHECK(!exists(bundle), "a failed bundle must not be written");
  CHECK_INT(dir_entries(dir), 5); /* 3 CA files, notes.txt, broken.pem: no temps */
  nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* ---- a real TLS handshake ----------------------------------------------- */

static pid_t spawn_logged(const char *const *argv, const char *log) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid;
  int rc = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, (char *const *)tool_env);
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

static int curl_https(const char *cafile, int port, char **out, char **errtext) {
  char url[100], resolve[100];
  snprintf(url, sizeof url, "https://localhost:%d/", port);
  snprintf(resolve, sizeof resolve, "localhost:%d:127.0.0.1", port);
  const char *argv[] = {"curl", "-q", "-sS", "--max-time", "20", "--cacert", cafile, "--resolve", resolve,
                        "-o", "/dev/null", "-w", "%{http_code}", url, NULL};
  struct proc_result r = run(argv);
  int code = r.status == PROC_EXITED ? r.code : -1;
  *out = strdup(r.out);
  *errtext = strdup(r.err);
  proc_result_free(&r);
  return code;
}

static void test_tls_handshake_with_curl(void) {
  need_openssl();
  if (!have("curl")) SKIP("the curl command is not installed");
  char dir[300], crt[4096], key[4096], log[400], bundle[400];
  make_dir(dir, sizeof dir, "tls");
  struct ca_minted good, other;
  struct ca_error err;
  CHECK_INT(mint(dir, "good", CA_KEY_EC_P256, 0, &good, &err), 0);
  CHECK_INT(mint(dir, "other", CA_KEY_EC_P256, 0, &other, &err), 0);
  CHECK_INT(make_leaf(dir, &good, "localhost", crt, key), 0);
  char msg[256];
  const char *code;
  int port = net_free_port("127.0.0.1", msg, sizeof msg, &code);
  CHECK(port > 0, "%s", msg);
  char accept[64];
  snprintf(accept, sizeof accept, "127.0.0.1:%d", port);
  snprintf(log, sizeof log, "%s/s_server.log", dir);
  const char *server[] = {"openssl", "s_server", "-accept", accept, "-cert", crt, "-key", key, "-www", NULL};
  pid_t pid = spawn_logged(server, log);
  CHECK(pid > 0, "cannot start openssl s_server");
  if (pid > 0) {
    struct net_wait_spec spec = {.host = "127.0.0.1", .port = port, .timeout_ms = 10000, .hold_ms = 50};
    struct net_wait_result w;
    int ready = net_wait_tcp(&spec, &w) == 0;
    CHECK(ready, "s_server did not come up: %s", w.error);
    if (ready) {
      char *out, *errtext;
      int rc = curl_https(good.cert, port, &out, &errtext);
      CHECK(rc == 0 && strcmp(out, "200") == 0, "curl with the minted CA: exit %d, '%s', %s", rc, out, errtext);
      free(out);
      free(errtext);

      rc = curl_https(other.cert, port, &out, &errtext);
      CHECK(rc == 60, "curl with another CA must fail verification (60), got %d: %s", rc, errtext);
      free(out);
      free(errtext);

      /* The bundle egress gets: public roots plus the CA, still works. */
      snprintf(bundle, sizeof bundle, "%s/bundle.pem", dir);
      const char *extra[] = {good.cert, NULL};
      if (ca_bundle(bundle, extra, 0644, &err) == 0) {
        rc = curl_https(bundle, port, &out, &errtext);
        CHECK(rc == 0 && strcmp(out, "200") == 0, "curl with the bundle: exit %d, %s", rc, errtext);
        free(out);
        free(errtext);
      }
    }
    kill(pid, SIGTERM);
    int st;
    waitpid(pid, &st, 0);
    if (tap_cur_failed) {
      char *l = slurp(log);
      printf("#   s_server log:\n%s\n", l ? l : "(none)");
      free(l);
    }
  }
  nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const char *base = getenv("TMPDIR");
  snprintf(tmp_root, sizeof tmp_root, "%s/bottle-test-ca.XXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(tmp_root)) {
    perror("mkdtemp");
    return 1;
  }
  setup_env(tmp_root);
  RUN(test_mint_ec_p256);
  RUN(test_mint_rsa_2048);
  RUN(test_mints_differ);
  RUN(test_mint_refuses_to_overwrite);
  RUN(test_mint_overwrite_replaces);
  RUN(test_mint_ec_pkcs8);
  RUN(test_mint_bad_arguments);
  RUN(test_mitmproxy_loads_pem);
  RUN(test_fingerprint_errors);
  RUN(test_system_roots_lookup);
  RUN(test_bundle_roots_plus_extra);
  RUN(test_bundle_uses_ssl_cert_file);
  RUN(test_bundle_rejects_bad_extra);
  RUN(test_tls_handshake_with_curl);
  nftw(tmp_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  return tap_done();
}
