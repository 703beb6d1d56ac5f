"""Scratch memory of a compiled model: large intermediate buffers kept between calls.

The compiled code allocates its intermediates with ``malloc`` and frees them before it
returns (``memref.alloc``/``dealloc``). glibc serves blocks of 32 MiB and more (and smaller
ones until its dynamic threshold has adapted) with a fresh ``mmap`` each time: every call
then pays the page faults of new memory, about 12 ms per 64 MiB here (softmax over 4096 x
4096 took 16385 faults per call).

``mallopt`` cannot fix that from the runtime: ``M_MMAP_THRESHOLD`` is capped at 32 MiB, and
it would change every allocation of the user's process. Instead each shared object is linked
with a small allocator (the C source below) through ``-Wl,--wrap=malloc,--wrap=free``, which
redirects only the calls *in the model's own object code*: blocks of at least 64 KiB that the
model frees are kept, per model, and handed out again for the same (page-rounded) size. Not
only the huge ones: glibc serves blocks between its thresholds from the heap's top, and trims
the top back to the kernel once that much is free, so a model whose intermediates are a few
hundred KiB (all-MiniLM-L6-v2 on short sentences: [96, 384] and [96, 1536] f32) grew and
shrank the heap on every call: some 1350 page faults a call, about a tenth of its time. At
most ``$MAX_SCRATCH_POOL_BYTES`` bytes of idle blocks are kept per model (default 256 MiB,
read when the model is loaded; 0 keeps none); they are released when the model's code is
unloaded (a destructor). Blocks are not zeroed: the code writes before it reads, as with
``malloc``.

Outputs the compiled code returns (sizes only the data determines) are freed by the runtime
through the model's exported ``max_scratch_free``, so that the allocator's table never holds
a pointer that libc already released (``max.runtime.memref.adopt_allocation``).
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from max.compiler.passes.registry import CompilationError

#: The symbol the runtime frees returned outputs with, where a model exports it.
FREE_SYMBOL = "max_scratch_free"

_SOURCE = r"""
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

void *__real_malloc(size_t size);
void __real_free(void *ptr);

enum { SLOTS = 128 };
#define MIN_KEPT ((size_t)64 << 10)
#define PAGE ((size_t)4096)

struct block { void *ptr; size_t size; unsigned long stamp; };
static struct block live[SLOTS];  /* large blocks handed out (freed ones are looked up) */
static struct block idle[SLOTS];  /* large blocks kept for the next call */
static size_t idle_bytes;
static size_t limit;
static int limit_read;
static unsigned long clock_;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static size_t read_limit(void) {
  const char *text = getenv("MAX_SCRATCH_POOL_BYTES");
  if (!text || !*text) return (size_t)256 << 20;
  char *end;
  unsigned long long v = strtoull(text, &end, 10);
  while (*end == ' ' || *end == '\t' || *end == '\n') end++;
  return *end ? ((size_t)256 << 20) : (size_t)v;  /* the runtime rejects malformed values */
}

__attribute__((visibility("hidden"))) void *__wrap_malloc(size_t size) {
  if (size < MIN_KEPT) return __real_malloc(size);
  size_t rounded = (size + PAGE - 1) & ~(PAGE - 1);
  void *ptr = NULL;
  pthread_mutex_lock(&lock);
  if (!limit_read) { limit = read_limit(); limit_read = 1; }
  for (int k = 0; k < SLOTS; k++) {
    if (idle[k].ptr && idle[k].size == rounded) {
      ptr = idle[k].ptr;
      idle[k].ptr = NULL;
      idle_bytes -= rounded;
      break;
    }
  }
  pthread_mutex_unlock(&lock);
  if (!ptr) ptr = __real_malloc(rounded);
  if (!ptr) return NULL;
  pthread_mutex_lock(&lock);
  for (int k = 0; k < SLOTS; k++) {
    if (!live[k].ptr) { live[k].ptr = ptr; live[k].size = rounded; break; }
  }
  /* No free slot: the block stays untracked, and its free goes straight to libc. */
  pthread_mutex_unlock(&lock);
  return ptr;
}

__attribute__((visibility("hidden"))) void __wrap_free(void *ptr) {
  if (!ptr) return;
  void *drop = ptr;
  pthread_mutex_lock(&lock);
  for (int k = 0; k < SLOTS; k++) {
    if (live[k].ptr != ptr) continue;
    size_t size = live[k].size;
    live[k].ptr = NULL;
    if (size > limit) break;
    /* Room for it: evict the least recently kept blocks until it fits. */
    while (idle_bytes + size > limit) {
      int old = -1;
      for (int j = 0; j < SLOTS; j++)
        if (idle[j].ptr && (old < 0 || idle[j].stamp < idle[old].stamp)) old = j;
      if (old < 0) break;
      void *evicted = idle[old].ptr;
      idle[old].ptr = NULL;
      idle_bytes -= idle[old].size;
      __real_free(evicted);
    }
    int slot = -1;
    for (int j = 0; j < SLOTS; j++)
      if (!idle[j].ptr) { slot = j; break; }
    if (slot >= 0 && idle_bytes + size <= limit) {
      idle[slot].ptr = ptr;
      idle[slot].size = size;
      idle[slot].stamp = ++clock_;
      idle_bytes += size;
      drop = NULL;
    }
    break;
  }
  pthread_mutex_unlock(&lock);
  if (drop) __real_free(drop);
}

__attribute__((visibility("default"))) void max_scratch_free(void *ptr) { __wrap_free(ptr); }

__attribute__((visibility("default"))) size_t max_scratch_idle_bytes(void) {
  pthread_mutex_lock(&lock);
  size_t n = idle_bytes;
  pthread_mutex_unlock(&lock);
  return n;
}

__attribute__((destructor)) static void release_idle(void) {
  for (int k = 0; k < SLOTS; k++) {
    if (idle[k].ptr) { __real_free(idle[k].ptr); idle[k].ptr = NULL; }
  }
  idle_bytes = 0;
}
"""


_lock = threading.Lock()
_object: Path | None = None


def _compiled(cc: str) -> Path:
    """The allocator's object file, compiled once per process (~50 ms of cc) into a private
    directory removed at exit."""
    global _object
    with _lock:
        if _object is None or not _object.exists():
            folder = Path(tempfile.mkdtemp(prefix="max-scratch-"))
            atexit.register(shutil.rmtree, folder, True)
            source = folder / "max_scratch.c"
            source.write_text(_SOURCE)
            obj = folder / "max_scratch.o"
            r = subprocess.run([cc, "-c", "-O2", "-fPIC", "-pthread", str(source), "-o", str(obj)],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise CompilationError(f"cc failed on the scratch allocator: {r.stderr[-2000:]}")
            _object = obj
        return _object


def link_args(llvm_ir: str, cc: str) -> list[str]:
    """Extra ``cc -shared`` arguments that link the scratch allocator into a model whose
    code calls ``malloc`` (none otherwise: nothing to keep)."""
    if "@malloc(" not in llvm_ir:
        return []
    return [str(_compiled(cc)), "-pthread", "-Wl,--wrap=malloc,--wrap=free"]
