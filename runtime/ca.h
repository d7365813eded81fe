/* ca.h: per-launch certificate authorities with OpenSSL. Pure C, no Lua.
 *
 * ca.c owns every use of OpenSSL in the launcher: minting the fresh,
 * self-signed CAs that pipelock and egress intercept TLS with, combining the
 * system trust roots with extra CAs into one bundle file, and the SHA-256
 * fingerprints shown to the user. No external tool runs. Files holding a
 * private key are created 0600 from the start and never replace an existing
 * file unless asked.
 *
 * Failures fill a struct ca_error: a code (an errno name such as "EEXIST" or
 * "ENOENT", "EINVAL" for bad arguments, "ESSL" for OpenSSL failures) and a
 * one-line message naming the file and, for OpenSSL, its own error string. */
#ifndef BOTTLE_CA_H
#define BOTTLE_CA_H

#include <limits.h>
#include <sys/types.h>

/* "AB:CD:..." for 32 bytes plus the NUL. */
#define CA_FINGERPRINT_SIZE (32 * 3)

enum ca_key_type {
  CA_KEY_EC_P256 = 0, /* the default; pipelock only accepts ECDSA CA keys */
  CA_KEY_RSA_2048
};

/* How the private key is written. pipelock's LoadCA reads only SEC1
 * (`BEGIN EC PRIVATE KEY`, x509.ParseECPrivateKey); mitmproxy reads either. */
enum ca_key_format {
  CA_KEY_FORMAT_DEFAULT = 0, /* SEC1 for EC keys, PKCS#8 for RSA */
  CA_KEY_FORMAT_SEC1,        /* EC only */
  CA_KEY_FORMAT_PKCS8
};

struct ca_error {
  const char *code;  /* static string, never NULL after a failure */
  char message[1024];
};

struct ca_mint_spec {
  const char *dir;         /* existing directory the files go into */
  const char *name;        /* base name: <dir>/<name>.{crt,key,pem}; no '/' */
  const char *common_name; /* NULL: "bottle <name> CA"; at most 64 bytes */
  int days;                /* validity from now; <= 0 means 30 */
  enum ca_key_type key;
  enum ca_key_format key_format;
  int overwrite;           /* replace existing files (each one atomically) */
};

struct ca_minted {
  char cert[PATH_MAX]; /* certificate PEM, 0644 */
  char key[PATH_MAX];  /* private key PEM (SEC1 or PKCS#8, see key_format), 0600 */
  char pem[PATH_MAX];  /* key then certificate (mitmproxy's confdir layout), 0600 */
  char fingerprint[CA_FINGERPRINT_SIZE];
};

/* Mints a CA: random 128-bit serial, basicConstraints critical CA:TRUE
 * pathlen:0, keyUsage critical keyCertSign+cRLSign, subject and authority key
 * identifiers, valid from an hour ago (clock skew between host and guests)
 * to now+days, SHA-256 signature. Returns 0, or -1 with err filled; on
 * failure no file it created is left behind. */
int ca_mint(const struct ca_mint_spec *spec, struct ca_minted *out, struct ca_error *err);

/* Writes `out` (atomically, with exactly `mode`): the system trust roots,
 * then every certificate found in each file of `extra` (NULL-terminated; may
 * be NULL). Only certificates are copied from the extra files, so passing a
 * key+cert .pem never leaks its key. Each extra file must hold at least one
 * certificate. Returns 0 or -1 with err filled. */
int ca_bundle(const char *out, const char *const *extra, mode_t mode, struct ca_error *err);

/* The system trust roots file: $SSL_CERT_FILE when set (it must exist), else
 * OpenSSL's default cert file, else the first existing of the usual Debian,
 * Red Hat and macOS locations. Returns 0 with the path in buf, or -1. */
int ca_system_roots(char *buf, size_t bufsz, struct ca_error *err);

/* SHA-256 fingerprint of the first certificate in a PEM file, formatted as
 * `openssl x509 -fingerprint -sha256` prints it. Returns 0 or -1. */
int ca_fingerprint(const char *cert_path, char out[CA_FINGERPRINT_SIZE], struct ca_error *err);

#endif
