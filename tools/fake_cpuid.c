/* Answers the CPUID instructions of patched copies of jaxlib, NumPy and SciPy (and the OpenBLAS
 * builds inside their wheels) with another CPU's cache sizes and without AVX-512, so one machine
 * can check that the pinned pipeline's bits do not depend on them (tools/cpuid_probe.py builds
 * this, patches the copies and runs a command under both).
 *
 * The probe replaces each CPUID (0F A2) in those native libraries by UD2 (0F 0B) and lists the
 * patched sites in $FAKE_CPUID_SITES, one "<library file name> <hex offset>" a line. Loaded with
 * LD_PRELOAD, this library catches the SIGILL of those sites only, runs the real CPUID, edits the
 * answer and steps over it. Any other illegal instruction keeps its default action.
 *
 * Environment: FAKE_L1D_KIB, FAKE_L2_KIB, FAKE_L3_KIB (cache sizes to report; unset: the real ones),
 * FAKE_NO_AVX512=1 (hide AVX-512), FAKE_CPUID_SITES (required), FAKE_CPUID_REPORT=1 (count the
 * answers per library on stderr at exit).
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#define MAX_SITES 16384
#define MAX_LIBRARIES 16
struct site { int library; unsigned long offset; };
static struct site sites[MAX_SITES]; /* sorted by (library, offset) */
static int n_sites;
static char libraries[MAX_LIBRARIES][256]; /* file names, without folders */
static int n_libraries;
static volatile long answered[MAX_LIBRARIES];
static unsigned l1d_kib, l2_kib, l3_kib;
static int no_avx512;
static struct sigaction previous; /* the SIGILL action before ours: other faults go to it */

static int library_index(const char *name) {
  for (int i = 0; i < n_libraries; i++)
    if (!strcmp(libraries[i], name)) return i;
  return -1;
}

static int is_site(int library, unsigned long offset) {
  int lo = 0, hi = n_sites - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    if (sites[mid].library == library && sites[mid].offset == offset) return 1;
    if (sites[mid].library < library || (sites[mid].library == library && sites[mid].offset < offset))
      lo = mid + 1;
    else
      hi = mid - 1;
  }
  return 0;
}

/* Deterministic cache parameters (Intel leaf 4, AMD leaf 0x8000001D): set the ways so that
 * ways x partitions x line x sets is `kib` KiB. */
static void resize_cache(unsigned eax, unsigned *ebx, unsigned ecx) {
  unsigned type = eax & 0x1f, level = (eax >> 5) & 7, kib = 0;
  if (level == 1 && type == 1) kib = l1d_kib;
  if (level == 2) kib = l2_kib;
  if (level == 3) kib = l3_kib;
  if (!kib) return;
  unsigned line = (*ebx & 0xfff) + 1, parts = ((*ebx >> 12) & 0x3ff) + 1, sets = ecx + 1;
  unsigned ways = kib * 1024u / (line * parts * sets); /* a power of two (cpuid_probe.py): it divides */
  if (ways >= 1) *ebx = (*ebx & 0x3fffffu) | ((ways - 1) << 22);
}

static void on_sigill(int sig, siginfo_t *info, void *context) {
  (void)info;
  ucontext_t *uc = context;
  greg_t *r = uc->uc_mcontext.gregs;
  Dl_info where;
  int library = -1;
  if (dladdr((void *)r[REG_RIP], &where) && where.dli_fname) {
    const char *slash = strrchr(where.dli_fname, '/');
    library = library_index(slash ? slash + 1 : where.dli_fname);
  }
  if (library < 0 || !is_site(library, r[REG_RIP] - (unsigned long)where.dli_fbase)) {
    /* not ours: hand it to the previous action (or the default), and the instruction runs again */
    sigaction(sig, &previous, NULL);
    return;
  }
  unsigned leaf = r[REG_RAX], sub = r[REG_RCX], a, b, c, d;
  __cpuid_count(leaf, sub, a, b, c, d);
  if (leaf == 4 || leaf == 0x8000001d) resize_cache(a, &b, c);
  if (leaf == 0x80000005 && l1d_kib) c = (c & 0x00ffffffu) | (l1d_kib << 24);
  if (leaf == 0x80000006 && l2_kib) c = (c & 0xffffu) | (l2_kib << 16);
  if (leaf == 0x80000006 && l3_kib) d = (d & 0x3ffffu) | ((l3_kib / 512) << 18); /* in 512 KiB units */
  if (no_avx512 && leaf == 7 && sub == 0) {
    b &= ~(1u << 16 | 1u << 17 | 1u << 21 | 1u << 26 | 1u << 27 | 1u << 28 | 1u << 30 | 1u << 31);
    c &= ~(1u << 1 | 1u << 6 | 1u << 11 | 1u << 12 | 1u << 14);
    d &= ~(1u << 2 | 1u << 3 | 1u << 8 | 1u << 23);
  }
  if (no_avx512 && leaf == 7 && sub == 1) a &= ~(1u << 5); /* avx512_bf16 */
  r[REG_RAX] = a, r[REG_RBX] = b, r[REG_RCX] = c, r[REG_RDX] = d;
  r[REG_RIP] += 2;
  answered[library]++;
}

static int cmp(const void *x, const void *y) {
  const struct site *a = x, *b = y;
  if (a->library != b->library) return a->library < b->library ? -1 : 1;
  return a->offset < b->offset ? -1 : a->offset > b->offset;
}

static void report(void) {
  for (int i = 0; i < n_libraries; i++) {
    if (answered[i]) {
      fprintf(stderr, "fake_cpuid: %s: answered %ld CPUID instructions\n", libraries[i], answered[i]);
    } else if (dlopen(libraries[i], RTLD_NOW | RTLD_NOLOAD)) { /* loaded, but not the patched copy */
      fprintf(stderr, "fake_cpuid: %s: expected the patched copy, found the original loaded\n", libraries[i]);
    }
  }
}

__attribute__((constructor)) static void install(void) {
  const char *path = getenv("FAKE_CPUID_SITES");
  FILE *f = path ? fopen(path, "r") : NULL;
  if (!f) {
    fprintf(stderr, "fake_cpuid: FAKE_CPUID_SITES: expected a readable file of offsets, found %s\n", path ? path : "unset");
    exit(2);
  }
  char name[256];
  unsigned long offset;
  while (fscanf(f, "%255s %lx", name, &offset) == 2) {
    int library = library_index(name);
    if (library < 0 && n_libraries < MAX_LIBRARIES) {
      strcpy(libraries[n_libraries], name);
      library = n_libraries++;
    }
    if (library < 0 || n_sites == MAX_SITES) {
      fprintf(stderr, "fake_cpuid: %s: expected at most %d libraries and %d sites, found more\n", path,
              MAX_LIBRARIES, MAX_SITES);
      exit(2);
    }
    sites[n_sites++] = (struct site){library, offset};
  }
  fclose(f);
  qsort(sites, n_sites, sizeof sites[0], cmp);
  if (getenv("FAKE_L1D_KIB")) l1d_kib = atoi(getenv("FAKE_L1D_KIB"));
  if (getenv("FAKE_L2_KIB")) l2_kib = atoi(getenv("FAKE_L2_KIB"));
  if (getenv("FAKE_L3_KIB")) l3_kib = atoi(getenv("FAKE_L3_KIB"));
  no_avx512 = getenv("FAKE_NO_AVX512") && !strcmp(getenv("FAKE_NO_AVX512"), "1");
  if (getenv("FAKE_CPUID_REPORT")) atexit(report);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_sigill;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigaction(SIGILL, &sa, &previous);
}
