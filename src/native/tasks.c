/*
 * The writer's data path in native threads, for plain lz4: the same tasks the JavaScript workers run
 * (squashfs/task.ts, run-task.ts), read, hashed and compressed by a few POSIX threads into the same shared arena.
 * With lz4 a block compresses in less time than a JavaScript worker spends booting, compiling and posting its
 * results, so on trees of many small files that overhead was a third of the CPU; here a task costs one queue push
 * and one call back on the main thread.
 *
 *   taskPoolCreate(arena, meta, hashes, slotSize, slotPieces, blockSize, threads, onDone) -> pool
 *       arena, meta, hashes: Uint8Array views of the whole shared arena (task.ts); onDone(id, length, kind,
 *       piece, got, errno, message) runs on the main thread when a task ends (kind 0 done, 1 the file shrank,
 *       2 it grew, 3 a system call failed with errno, 4 another error, in message)
 *   taskPoolRun(pool, id, pieces, paths, pathEnds, out, input, urgent) -> undefined
 *       the task's arrays are copied; urgent tasks go to the front of the queue
 *   taskPoolClose(pool) -> undefined
 *       queued tasks are dropped, running ones finish; the threads are joined
 *   taskPoolAvailable() -> whether the system liblz4 and SHA-256 (Node's OpenSSL) are there
 *
 * The piece loop mirrors run-task.ts line for line (same reads, same end checks, same stored bytes), so an image
 * is the same whichever path wrote it; src/squashfs/native-pool.test.ts compares them.
 */
#define _GNU_SOURCE
#include "native.h"
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Piece and Stored flags of task.ts. */
enum { P_COMPRESS = 1, P_END = 2, P_HASH = 4, P_SPARSE = 8, P_INLINE = 16, P_HOLE = 32 };
enum { S_RAW = 1, S_ZERO = 2 };
enum { DONE, SHRANK, GREW, SYSTEM, OTHER };
#define PIECE_FIELDS 4
#define MAX_THREADS 64

typedef unsigned char *(*sha256_fn)(const unsigned char *d, size_t n, unsigned char *md);
static sha256_fn sha256;

/* Node exports its OpenSSL to addons; the one-shot SHA256 (SHA-NI where the CPU has it) is looked up in the process. */
static bool load_sha256(void) {
  if (!sha256) sha256 = (sha256_fn)dlsym(RTLD_DEFAULT, "SHA256");
  return sha256 != NULL;
}

typedef struct task {
  struct task *next;
  double id;
  double *pieces;
  size_t count;
  uint8_t *paths;
  size_t paths_len;
  uint32_t *path_ends;
  size_t slots;
  int64_t out, input;
  /* The result. */
  double length;
  int kind, piece, err;
  double got; /* -1: unknown */
  const char *message;
} task_t;

typedef struct {
  uint8_t *arena, *meta, *hashes;
  size_t slot_size, slot_pieces, slot_count, block_size;
  uint8_t *zeros;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  task_t *head, *tail;
  bool closing, closed;
  int owners; /* the JavaScript handle and the thread-safe function: the last one to go frees the pool */
  size_t nthreads, in_flight;
  pthread_t threads[MAX_THREADS];
  napi_threadsafe_function done;
  napi_ref refs[3];
} pool_t;

static void free_task(task_t *t) {
  if (!t) return;
  free(t->pieces);
  free(t->paths);
  free(t->path_ends);
  free(t);
}

static bool fail(task_t *t, int kind, int piece, int err, double got, const char *message) {
  t->kind = kind;
  t->piece = piece;
  t->err = err;
  t->got = got;
  t->message = message;
  return false;
}

/* The task's file slot `slot` as a NUL-terminated path; an errno (as readFile gives it) when it cannot be one. */
static int slot_path(const task_t *t, size_t slot, char *buf, size_t cap) {
  if (slot >= t->slots) return EINVAL;
  size_t start = slot == 0 ? 0 : t->path_ends[slot - 1], end = t->path_ends[slot];
  if (end < start || end > t->paths_len) return EINVAL;
  return terminated_path(t->paths + start, end - start, buf, cap);
}

/* pread until `want` bytes or the end of the file: the bytes read, or -errno. */
static ssize_t read_at(int fd, uint8_t *into, size_t want, uint64_t offset) {
  size_t done = 0;
  while (done < want) {
    ssize_t n = pread(fd, into + done, want - done, (off_t)(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (n == 0) break;
    done += (size_t)n;
  }
  return (ssize_t)done;
}

static bool all_zero(const uint8_t *b, size_t n, const uint8_t *zeros) {
  return n == 0 || memcmp(b, zeros, n) == 0;
}

typedef struct {
  uint8_t *input;
  size_t input_len;
} scratch_t;

static bool grow(scratch_t *s, size_t n) {
  if (s->input_len >= n) return true;
  uint8_t *b = realloc(s->input, n);
  if (!b) return false;
  s->input = b;
  s->input_len = n;
  return true;
}

static bool run_task(pool_t *p, task_t *t, scratch_t *s) {
  if (t->out < 0 || (size_t)t->out >= p->slot_count || t->input >= (int64_t)p->slot_count || t->count > p->slot_pieces)
    return fail(t, OTHER, 0, 0, -1, "task names a slot outside the arena");
  uint8_t *data = p->arena + (size_t)t->out * p->slot_size;
  double *meta = (double *)(p->meta + (size_t)t->out * p->slot_pieces * 16);
  uint8_t *hashes = p->hashes + (size_t)t->out * p->slot_pieces * 32;
  const uint8_t *inl = t->input >= 0 ? p->arena + (size_t)t->input * p->slot_size : NULL;
  size_t at = 0, inline_at = 0;
  int fd = -1;
  int64_t fd_slot = -1;
  char path[4097];
  bool ok = true;
  for (size_t i = 0; i < t->count && ok; i++) {
    const double *pc = t->pieces + i * PIECE_FIELDS;
    int64_t slot = (int64_t)pc[0];
    uint64_t offset = (uint64_t)pc[1];
    size_t length = (size_t)pc[2];
    int flags = (int)pc[3];
    bool end = flags & P_END, compress = flags & P_COMPRESS;
    /* Room for the bytes, the end check's byte and lz4's output (at most length - 1). */
    if (at + length + 1 > p->slot_size) {
      ok = fail(t, OTHER, (int)i, 0, -1, "task does not fit its arena slot");
      break;
    }
    const uint8_t *bytes;
    if (flags & P_INLINE) {
      if (!inl || inline_at + length > p->slot_size) {
        ok = fail(t, OTHER, (int)i, 0, -1, "inline bytes outside their slot");
        break;
      }
      bytes = inl + inline_at;
      inline_at += length;
    } else {
      if (compress && !grow(s, length + 1)) {
        ok = fail(t, SYSTEM, (int)i, ENOMEM, -1, NULL);
        break;
      }
      uint8_t *into = compress ? s->input : data + at;
      if (slot != fd_slot && offset == 0 && end && !(flags & P_HOLE)) {
        /* A whole file in one piece (most small files): open, read, close. */
        int e = slot_path(t, (size_t)slot, path, sizeof path);
        if (e) {
          ok = fail(t, SYSTEM, (int)i, e, -1, NULL);
          break;
        }
        ssize_t n = read_small_file(path, into, length);
        if (n < 0) ok = fail(t, SYSTEM, (int)i, (int)-n, -1, NULL);
        else if ((size_t)n < length) ok = fail(t, SHRANK, (int)i, 0, (double)n, NULL);
        else if ((size_t)n > length) ok = fail(t, GREW, (int)i, 0, -1, NULL);
        if (!ok) break;
      } else {
        if (slot != fd_slot) {
          if (fd >= 0) close(fd);
          fd = -1;
          int e = slot_path(t, (size_t)slot, path, sizeof path);
          if (e) {
            ok = fail(t, SYSTEM, (int)i, e, -1, NULL);
            break;
          }
          fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
          if (fd < 0) {
            ok = fail(t, SYSTEM, (int)i, errno, -1, NULL);
            break;
          }
          fd_slot = slot;
        }
        ssize_t n = read_at(fd, into, end ? length + 1 : length, offset);
        if (n < 0) ok = fail(t, SYSTEM, (int)i, (int)-n, -1, NULL);
        else if ((size_t)n < length) ok = fail(t, SHRANK, (int)i, 0, (double)(offset + (uint64_t)n), NULL);
        else if (end && (size_t)n > length) ok = fail(t, GREW, (int)i, 0, -1, NULL);
        if (!ok) break;
        if (end) {
          close(fd);
          fd = -1;
          fd_slot = -1;
        }
      }
      bytes = into;
    }
    if (flags & P_HASH) sha256(flags & P_HOLE ? p->zeros : bytes, length, hashes + i * 32);
    if (!compress) {
      if (flags & P_INLINE) memmove(data + at, bytes, length);
      meta[i * 2] = (double)length;
      meta[i * 2 + 1] = 0;
      at += length;
      continue;
    }
    if (flags & P_SPARSE && all_zero(bytes, length, p->zeros)) {
      meta[i * 2] = 0;
      meta[i * 2 + 1] = S_ZERO;
      continue;
    }
    int n = length < 2 ? -1 : lz4_trial(bytes, length, data + at, length - 1);
    if (n < 0 && length >= 2) {
      ok = fail(t, OTHER, (int)i, 0, -1, "the system liblz4 is not available");
      break;
    }
    bool raw = n <= 0;
    if (raw) {
      memcpy(data + at, bytes, length);
      n = (int)length;
    }
    meta[i * 2] = n;
    meta[i * 2 + 1] = raw ? S_RAW : 0;
    at += (size_t)n;
  }
  if (fd >= 0) close(fd);
  t->length = ok ? (double)at : 0;
  return ok;
}

static void *thread_main(void *arg) {
  pool_t *p = arg;
  scratch_t s = {NULL, 0};
  for (;;) {
    pthread_mutex_lock(&p->lock);
    while (!p->head && !p->closing) pthread_cond_wait(&p->wake, &p->lock);
    if (p->closing) {
      pthread_mutex_unlock(&p->lock);
      break;
    }
    task_t *t = p->head;
    p->head = t->next;
    if (!p->head) p->tail = NULL;
    pthread_mutex_unlock(&p->lock);
    run_task(p, t, &s);
    if (napi_call_threadsafe_function(p->done, t, napi_tsfn_nonblocking) != napi_ok) free_task(t);
  }
  free(s.input);
  return NULL;
}

/* On the main thread: hand a finished task's result to onDone. */
static void call_done(napi_env env, napi_value cb, void *context, void *data) {
  pool_t *p = context;
  task_t *t = data;
  if (env && cb) {
    napi_value argv[7], global;
    napi_create_double(env, t->id, &argv[0]);
    napi_create_double(env, t->length, &argv[1]);
    napi_create_int32(env, t->kind, &argv[2]);
    napi_create_int32(env, t->piece, &argv[3]);
    napi_create_double(env, t->got, &argv[4]);
    napi_create_int32(env, t->err, &argv[5]);
    if (t->message) napi_create_string_utf8(env, t->message, NAPI_AUTO_LENGTH, &argv[6]);
    else napi_get_undefined(env, &argv[6]);
    napi_get_global(env, &global);
    if (p->in_flight > 0 && --p->in_flight == 0 && !p->closed) napi_unref_threadsafe_function(env, p->done);
    napi_call_function(env, global, cb, 7, argv, NULL);
  }
  free_task(t);
}

static void stop_threads(pool_t *p) {
  pthread_mutex_lock(&p->lock);
  p->closing = true;
  task_t *t = p->head;
  p->head = p->tail = NULL;
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->lock);
  while (t) {
    task_t *next = t->next;
    free_task(t);
    t = next;
  }
  for (size_t i = 0; i < p->nthreads; i++) pthread_join(p->threads[i], NULL);
  p->nthreads = 0;
}

static void close_pool(napi_env env, pool_t *p) {
  if (p->closed) return;
  stop_threads(p);
  p->closed = true;
  napi_release_threadsafe_function(p->done, napi_tsfn_release);
  for (int i = 0; i < 3; i++) napi_delete_reference(env, p->refs[i]);
}

static void drop_owner(pool_t *p) {
  if (--p->owners > 0) return;
  pthread_mutex_destroy(&p->lock);
  pthread_cond_destroy(&p->wake);
  free(p->zeros);
  free(p);
}

/* The handle was collected without taskPoolClose. */
static void finalize_pool(napi_env env, void *data, void *hint) {
  (void)hint;
  pool_t *p = data;
  close_pool(env, p);
  drop_owner(p);
}

/* Called once the thread-safe function has delivered what was queued. */
static void finalize_done(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  drop_owner(data);
}

static pool_t *get_pool(napi_env env, napi_value v) {
  pool_t *p = NULL;
  if (napi_get_value_external(env, v, (void **)&p) != napi_ok || !p) {
    napi_throw_type_error(env, NULL, "not a task pool");
    return NULL;
  }
  if (p->closed) {
    napi_throw_error(env, NULL, "the task pool is closed");
    return NULL;
  }
  return p;
}

napi_value task_pool_available(napi_env env, napi_callback_info info) {
  (void)info;
  uint8_t in[64] = {0}, out[64];
  napi_value r;
  napi_get_boolean(env, load_sha256() && lz4_trial(in, sizeof in, out, sizeof out) >= 0, &r);
  return r;
}

napi_value task_pool_create(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  uint8_t *arena, *meta, *hashes;
  size_t arena_len, meta_len, hashes_len;
  uint32_t slot_size, slot_pieces, block_size, threads;
  if (!get_args(env, info, 8, argv, "taskPoolCreate needs (arena, meta, hashes, slotSize, slotPieces, blockSize, threads, onDone)") ||
      !get_bytes(env, argv[0], "arena", &arena, &arena_len) || !get_bytes(env, argv[1], "meta", &meta, &meta_len) ||
      !get_bytes(env, argv[2], "hashes", &hashes, &hashes_len) || !get_u32(env, argv[3], "slotSize", &slot_size) ||
      !get_u32(env, argv[4], "slotPieces", &slot_pieces) || !get_u32(env, argv[5], "blockSize", &block_size) ||
      !get_u32(env, argv[6], "threads", &threads))
    return NULL;
  if (slot_size == 0 || arena_len % slot_size != 0 || meta_len < arena_len / slot_size * slot_pieces * 16 ||
      hashes_len < arena_len / slot_size * slot_pieces * 32 || threads == 0 || threads > MAX_THREADS || block_size == 0) {
    napi_throw_range_error(env, NULL, "taskPoolCreate: arena, slots or threads out of range");
    return NULL;
  }
  if (!load_sha256()) {
    napi_throw_error(env, "SHA256_UNAVAILABLE", "this Node does not export SHA256 to addons");
    return NULL;
  }
  pool_t *p = calloc(1, sizeof *p);
  if (!p || !(p->zeros = calloc(block_size > slot_size ? block_size : slot_size, 1))) {
    free(p);
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  p->arena = arena;
  p->meta = meta;
  p->hashes = hashes;
  p->slot_size = slot_size;
  p->slot_pieces = slot_pieces;
  p->slot_count = arena_len / slot_size;
  p->block_size = block_size;
  pthread_mutex_init(&p->lock, NULL);
  pthread_cond_init(&p->wake, NULL);
  napi_value name;
  napi_create_string_utf8(env, "mkportable task pool", NAPI_AUTO_LENGTH, &name);
  p->owners = 2;
  if (napi_create_threadsafe_function(env, argv[7], NULL, name, 0, 1, p, finalize_done, p, call_done, &p->done) != napi_ok) {
    p->owners = 1;
    drop_owner(p);
    napi_throw_error(env, NULL, "cannot create the task pool's callback");
    return NULL;
  }
  napi_unref_threadsafe_function(env, p->done); /* only tasks in flight keep the process alive */
  for (int i = 0; i < 3; i++) napi_create_reference(env, argv[i], 1, &p->refs[i]);
  for (uint32_t i = 0; i < threads; i++) {
    if (pthread_create(&p->threads[i], NULL, thread_main, p) != 0) break;
    p->nthreads++;
  }
  napi_value handle;
  if (p->nthreads == 0 || napi_create_external(env, p, finalize_pool, NULL, &handle) != napi_ok) {
    close_pool(env, p);
    drop_owner(p);
    napi_throw_error(env, NULL, "cannot start the task pool's threads");
    return NULL;
  }
  return handle;
}

/* A copy of a typed array argument's bytes (malloc'ed, at least one byte). */
static void *copy_array(napi_env env, napi_value v, napi_typedarray_type want, size_t elem, size_t *count) {
  bool is = false;
  napi_typedarray_type type;
  void *data;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is || napi_get_typedarray_info(env, v, &type, count, &data, NULL, NULL) != napi_ok ||
      type != want) {
    napi_throw_type_error(env, NULL, "taskPoolRun: pieces must be a Float64Array, paths a Uint8Array, pathEnds a Uint32Array");
    return NULL;
  }
  void *c = malloc(*count * elem + 1);
  if (!c) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  memcpy(c, data, *count * elem);
  return c;
}

napi_value task_pool_run(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  if (!get_args(env, info, 8, argv, "taskPoolRun needs (pool, id, pieces, paths, pathEnds, out, input, urgent)")) return NULL;
  pool_t *p = get_pool(env, argv[0]);
  if (!p) return NULL;
  task_t *t = calloc(1, sizeof *t);
  if (!t) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  size_t n_pieces;
  bool urgent = false;
  if (napi_get_value_double(env, argv[1], &t->id) != napi_ok || !get_i64(env, argv[5], "out", &t->out) ||
      !get_i64(env, argv[6], "input", &t->input) || napi_get_value_bool(env, argv[7], &urgent) != napi_ok ||
      !(t->pieces = copy_array(env, argv[2], napi_float64_array, 8, &n_pieces)) ||
      !(t->paths = copy_array(env, argv[3], napi_uint8_array, 1, &t->paths_len)) ||
      !(t->path_ends = copy_array(env, argv[4], napi_uint32_array, 4, &t->slots))) {
    free_task(t);
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) napi_throw_type_error(env, NULL, "taskPoolRun: bad arguments");
    return NULL;
  }
  t->count = n_pieces / PIECE_FIELDS;
  t->got = -1;
  if (p->in_flight++ == 0) napi_ref_threadsafe_function(env, p->done);
  pthread_mutex_lock(&p->lock);
  if (urgent) {
    t->next = p->head;
    p->head = t;
    if (!p->tail) p->tail = t;
  } else {
    if (p->tail) p->tail->next = t;
    else p->head = t;
    p->tail = t;
  }
  pthread_cond_signal(&p->wake);
  pthread_mutex_unlock(&p->lock);
  return NULL;
}

napi_value task_pool_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv, "taskPoolClose needs (pool)")) return NULL;
  pool_t *p = NULL;
  if (napi_get_value_external(env, argv[0], (void **)&p) != napi_ok || !p) {
    napi_throw_type_error(env, NULL, "not a task pool");
    return NULL;
  }
  close_pool(env, p);
  return NULL;
}
