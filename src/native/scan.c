/*
 * mkportable's directory scan: one call lists a directory and lstat()s every name in it (fstatat on the open
 * directory, so the kernel resolves each name once, relative), reads symlink targets, and sorts the names by their
 * bytes, as squashfs wants them. Planning a tree of tens of thousands of files is then a few system calls per file
 * and no JavaScript object per file. Synchronous: it runs while nothing else does (planning).
 *
 *   scan(dir) -> { names, nameEnds, stats, targets, targetEnds, xattrRows, xattrNames, xattrNameEnds, xattrValues, xattrValueEnds }
 *     names      every name but "." and "..", back to back, sorted bytewise (Uint8Array)
 *     nameEnds   where each name ends in names (Uint32Array)
 *     stats      per name: mode, uid, gid, size, mtime (s), nlink, ino, dev, rdev (Float64Array, 9 per name)
 *     targets    symlink targets back to back (empty for other names); targetEnds like nameEnds
 *     xattr*     the extended attributes (llistxattr + lgetxattr, as listXattrs in fs.c): for each attribute, the
 *                index of its name in `names`, its name and its value (blobs with their ends)
 *   A name that vanishes between readdir and lstat is left out. Errors throw with errno's code ("EACCES") and name.
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

#define FIELDS 9

typedef struct {
  char *name;
  size_t len;
} entry_t;

typedef struct {
  uint8_t *data;
  size_t len, cap;
} bytes_t;

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

static napi_value throw_path_errno(napi_env env, int err, const char *what, const char *path) {
  char msg[8500];
  snprintf(msg, sizeof msg, "%s: %s, %s '%s'", strerrorname_np(err) ? strerrorname_np(err) : "EIO", strerror(err), what, path);
  napi_throw_error(env, strerrorname_np(err) ? strerrorname_np(err) : "EIO", msg);
  return NULL;
}

static napi_value typed(napi_env env, napi_typedarray_type type, const void *data, size_t bytes, size_t count) {
  void *dst = NULL;
  napi_value ab, arr;
  if (napi_create_arraybuffer(env, bytes, &dst, &ab) != napi_ok) return NULL;
  if (bytes) memcpy(dst, data, bytes);
  if (napi_create_typedarray(env, type, count, ab, 0, &arr) != napi_ok) return NULL;
  return arr;
}

napi_value fs_scan(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char path[4097];
  size_t plen = 0;
  bool is_buf = false;
  if (argc >= 1) napi_is_buffer(env, argv[0], &is_buf);
  if (is_buf) {
    void *p;
    napi_get_buffer_info(env, argv[0], &p, &plen);
    if (plen >= sizeof path) {
      napi_throw_error(env, "ENAMETOOLONG", "path too long");
      return NULL;
    }
    memcpy(path, p, plen);
    path[plen] = 0;
  } else if (argc < 1 || napi_get_value_string_utf8(env, argv[0], path, sizeof path, &plen) != napi_ok) {
    napi_throw_type_error(env, NULL, "scan(dir) needs a path (string or Buffer)");
    return NULL;
  }

  int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return throw_path_errno(env, errno, "scandir", path);
  DIR *d = fdopendir(dfd);
  if (!d) {
    int e = errno;
    close(dfd);
    return throw_path_errno(env, e, "scandir", path);
  }
  entry_t *ents = NULL;
  size_t n = 0, cap = 0;
  bool oom = false;
  for (;;) {
    errno = 0;
    struct dirent *de = readdir(d);
    if (!de) break;
    const char *nm = de->d_name;
    if (nm[0] == '.' && (nm[1] == 0 || (nm[1] == '.' && nm[2] == 0))) continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 64;
      entry_t *e = realloc(ents, cap * sizeof *ents);
      if (!e) { oom = true; break; }
      ents = e;
    }
    size_t len = strlen(nm);
    ents[n].name = malloc(len + 1);
    if (!ents[n].name) { oom = true; break; }
    memcpy(ents[n].name, nm, len + 1);
    ents[n].len = len;
    n++;
  }
  int read_err = errno;
  napi_value result = NULL;
  bytes_t names = {0}, targets = {0};
  bytes_t xnames = {0}, xvalues = {0}, xrows = {0}, xname_ends = {0}, xvalue_ends = {0};
  char *list = NULL;
  size_t list_cap = 0;
  uint32_t *name_ends = NULL, *target_ends = NULL;
  double *stats = NULL;
  if (oom) {
    napi_throw_error(env, "ENOMEM", "out of memory listing a directory");
    goto out;
  }
  if (read_err) {
    throw_path_errno(env, read_err, "readdir", path);
    goto out;
  }
  qsort(ents, n, sizeof *ents, by_bytes);
  name_ends = malloc((n ? n : 1) * sizeof *name_ends);
  target_ends = malloc((n ? n : 1) * sizeof *target_ends);
  stats = malloc((n ? n : 1) * FIELDS * sizeof *stats);
  if (!name_ends || !target_ends || !stats) {
    napi_throw_error(env, "ENOMEM", "out of memory listing a directory");
    goto out;
  }
  size_t kept = 0;
  char link[4097];
  char full[8200];
  for (size_t i = 0; i < n; i++) {
    struct stat st;
    snprintf(full, sizeof full, "%s/%s", path, ents[i].name);
    if (fstatat(dfd, ents[i].name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) continue;
      throw_path_errno(env, errno, "lstat", full);
      goto out;
    }
    if (S_ISLNK(st.st_mode)) {
      ssize_t l = readlinkat(dfd, ents[i].name, link, sizeof link - 1);
      if (l < 0) {
        if (errno == ENOENT) continue;
        throw_path_errno(env, errno, "readlink", full);
        goto out;
      }
      if (!push_bytes(&targets, link, (size_t)l)) { napi_throw_error(env, "ENOMEM", "out of memory"); goto out; }
    }
    if (!push_bytes(&names, ents[i].name, ents[i].len)) { napi_throw_error(env, "ENOMEM", "out of memory"); goto out; }
    name_ends[kept] = (uint32_t)names.len;
    target_ends[kept] = (uint32_t)targets.len;
    /* Extended attributes: the list, then each value (one that is gone or not readable is left out). */
    for (int attempt = 0;; attempt++) {
      ssize_t len = llistxattr(full, NULL, 0);
      if (len < 0 && (errno == ENOTSUP || errno == ENOENT)) len = 0;
      if (len < 0) {
        throw_path_errno(env, errno, "llistxattr", full);
        goto out;
      }
      if (len == 0) break;
      if ((size_t)len > list_cap) {
        char *l2 = realloc(list, (size_t)len);
        if (!l2) { napi_throw_error(env, "ENOMEM", "out of memory"); goto out; }
        list = l2;
        list_cap = (size_t)len;
      }
      ssize_t got = llistxattr(full, list, (size_t)len);
      if (got < 0) {
        if (errno == ERANGE && attempt < 8) continue;
        throw_path_errno(env, errno, "llistxattr", full);
        goto out;
      }
      for (ssize_t at = 0; at < got;) {
        const char *xn = list + at;
        size_t xl = strnlen(xn, (size_t)(got - at));
        at += (ssize_t)xl + 1;
        if (xl == 0) continue;
        ssize_t vsize;
        bool failed;
        char *value = xattr_value(env, full, xn, &vsize, &failed);
        if (failed) goto out;
        if (vsize < 0) continue;
        uint32_t row = (uint32_t)kept, ne, ve;
        bool ok = push_bytes(&xnames, xn, xl) && push_bytes(&xvalues, value ? value : "", (size_t)vsize);
        free(value);
        ne = (uint32_t)xnames.len;
        ve = (uint32_t)xvalues.len;
        if (!ok || !push_bytes(&xrows, &row, 4) || !push_bytes(&xname_ends, &ne, 4) || !push_bytes(&xvalue_ends, &ve, 4)) {
          napi_throw_error(env, "ENOMEM", "out of memory");
          goto out;
        }
      }
      break;
    }
    double *f = stats + kept * FIELDS;
    f[0] = st.st_mode;
    f[1] = st.st_uid;
    f[2] = st.st_gid;
    f[3] = (double)st.st_size;
    f[4] = (double)st.st_mtim.tv_sec;
    f[5] = (double)st.st_nlink;
    f[6] = (double)st.st_ino;
    f[7] = (double)st.st_dev;
    f[8] = (double)st.st_rdev;
    kept++;
  }
  napi_value o, v;
  napi_create_object(env, &o);
  if (!(v = typed(env, napi_uint8_array, names.data, names.len, names.len))) goto out;
  napi_set_named_property(env, o, "names", v);
  if (!(v = typed(env, napi_uint32_array, name_ends, kept * 4, kept))) goto out;
  napi_set_named_property(env, o, "nameEnds", v);
  if (!(v = typed(env, napi_float64_array, stats, kept * FIELDS * 8, kept * FIELDS))) goto out;
  napi_set_named_property(env, o, "stats", v);
  if (!(v = typed(env, napi_uint8_array, targets.data, targets.len, targets.len))) goto out;
  napi_set_named_property(env, o, "targets", v);
  if (!(v = typed(env, napi_uint32_array, target_ends, kept * 4, kept))) goto out;
  napi_set_named_property(env, o, "targetEnds", v);
  size_t xcount = xrows.len / 4;
  if (!(v = typed(env, napi_uint32_array, xrows.data, xrows.len, xcount))) goto out;
  napi_set_named_property(env, o, "xattrRows", v);
  if (!(v = typed(env, napi_uint8_array, xnames.data, xnames.len, xnames.len))) goto out;
  napi_set_named_property(env, o, "xattrNames", v);
  if (!(v = typed(env, napi_uint32_array, xname_ends.data, xname_ends.len, xcount))) goto out;
  napi_set_named_property(env, o, "xattrNameEnds", v);
  if (!(v = typed(env, napi_uint8_array, xvalues.data, xvalues.len, xvalues.len))) goto out;
  napi_set_named_property(env, o, "xattrValues", v);
  if (!(v = typed(env, napi_uint32_array, xvalue_ends.data, xvalue_ends.len, xcount))) goto out;
  napi_set_named_property(env, o, "xattrValueEnds", v);
  result = o;
out:
  free(list);
  free(xnames.data);
  free(xvalues.data);
  free(xrows.data);
  free(xname_ends.data);
  free(xvalue_ends.data);
  for (size_t i = 0; i < n; i++) free(ents[i].name);
  free(ents);
  free(names.data);
  free(targets.data);
  free(name_ends);
  free(target_ends);
  free(stats);
  closedir(d);
  return result;
}

