/*
 * mkportable's directory scan: one call lists a directory and lstat()s every name in it (fstatat on the open
 * directory, so the kernel resolves each name once, relative), reads symlink targets and extended attributes, and
 * sorts the names by their bytes, as squashfs wants them. Planning a tree of tens of thousands of files is then a
 * few system calls per file and no JavaScript object per file.
 *
 *   scanAsync(dir) -> a promise of { names, nameEnds, stats, targets, targetEnds, xattrRows, xattrNames,
 *                     xattrNameEnds, xattrValues, xattrValueEnds }, the work done on libuv's thread pool: a walk keeps
 *                     several directories in flight, so that listing a big tree uses every core.
 *     names      every name but "." and "..", back to back, sorted bytewise (Uint8Array)
 *     nameEnds   where each name ends in names (Uint32Array)
 *     stats      per name: mode, uid, gid, size, mtime (s), nlink, ino, dev, rdev, blocks (Float64Array, 10 per name)
 *     targets    symlink targets back to back (empty for other names); targetEnds like nameEnds
 *     xattr*     the extended attributes (llistxattr + lgetxattr): for each attribute, the index of its name in
 *                `names`, its name and its value (blobs with their ends). One that is gone or that the caller may
 *                not read is left out.
 *   A name that vanishes between readdir and lstat is left out. Errors reject the promise with errno's code
 *   ("EACCES") and the path.
 */
#define _GNU_SOURCE
#include "native.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define FIELDS 10

typedef struct {
  char *name;
  size_t len;
} entry_t;

typedef struct {
  uint8_t *data;
  size_t len, cap;
} bytes_t;

/* One directory's listing, made without touching JavaScript (so it can run on any thread). */
typedef struct {
  char path[4097];
  int err;              /* errno of the failure, 0 when none */
  const char *what;     /* the call that failed */
  char *err_path;       /* the path it failed on (malloc'ed) */
  size_t count;
  bytes_t names, name_ends, stats, targets, target_ends;
  bytes_t xnames, xvalues, xrows, xname_ends, xvalue_ends;
  napi_async_work work;
  napi_deferred deferred;
} scan_t;

static bool push_bytes(bytes_t *b, const void *p, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 4096;
    while (cap < b->len + n) cap *= 2;
    uint8_t *d = realloc(b->data, cap);
    if (!d) return false;
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return true;
}

static int by_bytes(const void *a, const void *b) {
  const entry_t *x = a, *y = b;
  size_t n = x->len < y->len ? x->len : y->len;
  int c = memcmp(x->name, y->name, n);
  if (c != 0) return c;
  return x->len < y->len ? -1 : x->len > y->len ? 1 : 0;
}

/* Records the first failure; returns false so callers can `return fail(...)`. */
static bool fail(scan_t *r, int err, const char *what, const char *path) {
  if (r->err) return false;
  r->err = err ? err : EIO;
  r->what = what;
  r->err_path = strdup(path);
  return false;
}

/* The attributes of `full` (entry number `row`) into r's xattr columns. */
static bool scan_xattrs(scan_t *r, const char *full, uint32_t row, char **list, size_t *list_cap) {
  for (int attempt = 0;; attempt++) {
    ssize_t len = llistxattr(full, NULL, 0);
    if (len < 0 && (errno == ENOTSUP || errno == ENOENT)) len = 0;
    if (len < 0) return fail(r, errno, "llistxattr", full);
    if (len == 0) return true;
    if ((size_t)len > *list_cap) {
      char *l2 = realloc(*list, (size_t)len);
      if (!l2) return fail(r, ENOMEM, "llistxattr", full);
      *list = l2;
      *list_cap = (size_t)len;
    }
    ssize_t got = llistxattr(full, *list, (size_t)len);
    if (got < 0) {
      if (errno == ERANGE && attempt < 8) continue;
      return fail(r, errno, "llistxattr", full);
    }
    for (ssize_t at = 0; at < got;) {
      const char *xn = *list + at;
      size_t xl = strnlen(xn, (size_t)(got - at));
      at += (ssize_t)xl + 1;
      if (xl == 0) continue;
      char *value;
      ssize_t vsize;
      int err = read_xattr(full, xn, &value, &vsize);
      if (err) return fail(r, err, "lgetxattr", full);
      if (vsize < 0) continue;
      bool ok = push_bytes(&r->xnames, xn, xl) && push_bytes(&r->xvalues, value ? value : "", (size_t)vsize);
      free(value);
      uint32_t ne = (uint32_t)r->xnames.len, ve = (uint32_t)r->xvalues.len;
      if (!ok || !push_bytes(&r->xrows, &row, 4) || !push_bytes(&r->xname_ends, &ne, 4) || !push_bytes(&r->xvalue_ends, &ve, 4))
        return fail(r, ENOMEM, "llistxattr", full);
    }
    return true;
  }
}

static void scan_dir(scan_t *r) {
  const char *path = r->path;
  int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    fail(r, errno, "scandir", path);
    return;
  }
  DIR *d = fdopendir(dfd);
  if (!d) {
    fail(r, errno, "scandir", path);
    close(dfd);
    return;
  }
  entry_t *ents = NULL;
  size_t n = 0, cap = 0;
  char *list = NULL;
  size_t list_cap = 0;
  for (;;) {
    errno = 0;
    struct dirent *de = readdir(d);
    if (!de) {
      if (errno) fail(r, errno, "readdir", path);
      break;
    }
    const char *nm = de->d_name;
    if (nm[0] == '.' && (nm[1] == 0 || (nm[1] == '.' && nm[2] == 0))) continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 64;
      entry_t *e = realloc(ents, cap * sizeof *ents);
      if (!e) { fail(r, ENOMEM, "readdir", path); break; }
      ents = e;
    }
    size_t len = strlen(nm);
    ents[n].name = malloc(len + 1);
    if (!ents[n].name) { fail(r, ENOMEM, "readdir", path); break; }
    memcpy(ents[n].name, nm, len + 1);
    ents[n].len = len;
    n++;
  }
  if (!r->err) qsort(ents, n, sizeof *ents, by_bytes);
  char link[4097];
  char full[8200];
  for (size_t i = 0; i < n && !r->err; i++) {
    struct stat st;
    snprintf(full, sizeof full, "%s/%s", path, ents[i].name);
    if (fstatat(dfd, ents[i].name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) continue;
      fail(r, errno, "lstat", full);
      break;
    }
    if (S_ISLNK(st.st_mode)) {
      ssize_t l = readlinkat(dfd, ents[i].name, link, sizeof link - 1);
      if (l < 0) {
        if (errno == ENOENT) continue;
        fail(r, errno, "readlink", full);
        break;
      }
      if (!push_bytes(&r->targets, link, (size_t)l)) { fail(r, ENOMEM, "readlink", full); break; }
    }
    if (!push_bytes(&r->names, ents[i].name, ents[i].len)) { fail(r, ENOMEM, "lstat", full); break; }
    uint32_t ne = (uint32_t)r->names.len, te = (uint32_t)r->targets.len;
    if (!scan_xattrs(r, full, (uint32_t)r->count, &list, &list_cap)) break;
    double f[FIELDS] = {
      st.st_mode, st.st_uid, st.st_gid, (double)st.st_size, (double)st.st_mtim.tv_sec,
      (double)st.st_nlink, (double)st.st_ino, (double)st.st_dev, (double)st.st_rdev, (double)st.st_blocks,
    };
    if (!push_bytes(&r->name_ends, &ne, 4) || !push_bytes(&r->target_ends, &te, 4) || !push_bytes(&r->stats, f, sizeof f)) {
      fail(r, ENOMEM, "lstat", full);
      break;
    }
    r->count++;
  }
  free(list);
  for (size_t i = 0; i < n; i++) free(ents[i].name);
  free(ents);
  closedir(d);
}

static void scan_free(scan_t *r) {
  bytes_t *all[] = {&r->names, &r->name_ends, &r->stats, &r->targets, &r->target_ends,
                    &r->xnames, &r->xvalues, &r->xrows, &r->xname_ends, &r->xvalue_ends};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]->data);
  free(r->err_path);
  free(r);
}

static napi_value path_error(napi_env env, scan_t *r) {
  const char *code = strerrorname_np(r->err) ? strerrorname_np(r->err) : "EIO";
  char msg[8500];
  snprintf(msg, sizeof msg, "%s: %s, %s '%s'", code, strerror(r->err), r->what, r->err_path ? r->err_path : r->path);
  napi_value c, m, e;
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &c);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_error(env, c, m, &e);
  return e;
}

/* The listing as a JavaScript object; NULL when an array cannot be made (an exception is then pending). Every
 * column is a view of one ArrayBuffer: one allocation per directory, not ten. */
static napi_value result_object(napi_env env, scan_t *r) {
  struct { const char *key; napi_typedarray_type type; const bytes_t *b; size_t unit; } cols[] = {
    {"stats", napi_float64_array, &r->stats, 8},
    {"nameEnds", napi_uint32_array, &r->name_ends, 4},
    {"targetEnds", napi_uint32_array, &r->target_ends, 4},
    {"xattrRows", napi_uint32_array, &r->xrows, 4},
    {"xattrNameEnds", napi_uint32_array, &r->xname_ends, 4},
    {"xattrValueEnds", napi_uint32_array, &r->xvalue_ends, 4},
    {"names", napi_uint8_array, &r->names, 1},
    {"targets", napi_uint8_array, &r->targets, 1},
    {"xattrNames", napi_uint8_array, &r->xnames, 1},
    {"xattrValues", napi_uint8_array, &r->xvalues, 1},
  };
  const size_t ncols = sizeof cols / sizeof cols[0];
  size_t offsets[sizeof cols / sizeof cols[0]], total = 0;
  for (size_t i = 0; i < ncols; i++) {
    offsets[i] = total;
    total += (cols[i].b->len + 7) & ~(size_t)7; /* keeps every view aligned for its element size */
  }
  void *data = NULL;
  napi_value o, ab, v;
  if (napi_create_object(env, &o) != napi_ok || napi_create_arraybuffer(env, total, &data, &ab) != napi_ok) return NULL;
  for (size_t i = 0; i < ncols; i++) {
    if (cols[i].b->len) memcpy((uint8_t *)data + offsets[i], cols[i].b->data, cols[i].b->len);
    if (napi_create_typedarray(env, cols[i].type, cols[i].b->len / cols[i].unit, ab, offsets[i], &v) != napi_ok) return NULL;
    napi_set_named_property(env, o, cols[i].key, v);
  }
  return o;
}

/* The path argument into a new scan_t; NULL with an exception pending when it is not one. */
static scan_t *scan_arg(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  bool is_buf = false;
  if (argc >= 1) napi_is_buffer(env, argv[0], &is_buf);
  scan_t *r = calloc(1, sizeof *r);
  if (!r) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  size_t plen = 0;
  if (is_buf) {
    void *p;
    napi_get_buffer_info(env, argv[0], &p, &plen);
    if (plen >= sizeof r->path) {
      free(r);
      napi_throw_error(env, "ENAMETOOLONG", "path too long");
      return NULL;
    }
    memcpy(r->path, p, plen);
    r->path[plen] = 0;
  } else if (argc < 1 || napi_get_value_string_utf8(env, argv[0], r->path, sizeof r->path, &plen) != napi_ok) {
    free(r);
    napi_throw_type_error(env, NULL, "scan(dir) needs a path (string or Buffer)");
    return NULL;
  }
  return r;
}

static void scan_execute(napi_env env, void *data) {
  (void)env;
  scan_dir(data);
}

static void scan_complete(napi_env env, napi_status status, void *data) {
  scan_t *r = data;
  if (status != napi_ok && !r->err) fail(r, ECANCELED, "scandir", r->path);
  if (r->err) napi_reject_deferred(env, r->deferred, path_error(env, r));
  else {
    napi_value o = result_object(env, r);
    if (o) napi_resolve_deferred(env, r->deferred, o);
    else {
      napi_value e;
      napi_get_and_clear_last_exception(env, &e);
      napi_reject_deferred(env, r->deferred, e);
    }
  }
  napi_delete_async_work(env, r->work);
  scan_free(r);
}

napi_value fs_scan_async(napi_env env, napi_callback_info info) {
  scan_t *r = scan_arg(env, info);
  if (!r) return NULL;
  napi_value promise, name;
  napi_create_promise(env, &r->deferred, &promise);
  napi_create_string_utf8(env, "mkportable.scan", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, scan_execute, scan_complete, r, &r->work);
  napi_queue_async_work(env, r->work);
  return promise;
}
