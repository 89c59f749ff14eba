/* Answers the CPUID instructions of a patched copy of jaxlib with another CPU's cache sizes and
 * without AVX-512, so one machine can check that the pinned pipeline's bits do not depend on them
 * (tools/cpuid_probe.py builds this, patches the copy and runs a command under both).
 *
 * The probe replaces each CPUID (0F A2) in jaxlib's native library by UD2 (0F 0B) and lists
 * the patched offsets in $FAKE_CPUID_SITES (the library's file name in $FAKE_CPUID_LIBRARY). Loaded with LD_PRELOAD, this library catches the
 * SIGILL of those sites only, runs the real CPUID, edits the answer and steps over it. Any other
 * illegal instruction keeps its default action.
 *
 * Environment: FAKE_L1D_KIB, FAKE_L2_KIB, FAKE_L3_KIB (cache sizes to report; unset: the real ones),
 * FAKE_NO_AVX512=1 (hide AVX-512), FAKE_CPUID_SITES (required), FAKE_CPUID_REPORT=1 (count the
 * answers on stderr at exit).
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

static unsigned long sites[4096];
static int n_sites;
static unsigned l1d_kib, l2_kib;
static unsigned long library_base;
static int no_avx512;
static volatile long answered;
static const char *library = "";
static unsigned l3_kib;
static struct sigaction previous; /* the SIGILL action before ours: other faults go to it */

static int is_site(unsigned long offset) {
  int lo = 0, hi = n_sites - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    if (sites[mid] == offset) return 1;
    if (sites[mid] < offset) lo = mid + 1; else hi = mid - 1;
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
  if (!library_base) { /* the first fault: find the patched library (dladdr, once) */
    const char *name = NULL;
    if (dladdr((void *)r[REG_RIP], &where) && where.dli_fname) name = strrchr(where.dli_fname, '/');
    if (name && !strcmp(name + 1, library)) library_base = (unsigned long)where.dli_fbase;
  }
  if (!library_base || !is_site(r[REG_RIP] - library_base)) {
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
  answered++;
}

static int cmp(const void *x, const void *y) {
  unsigned long a = *(const unsigned long *)x, b = *(const unsigned long *)y;
  return a < b ? -1 : a > b;
}

static void report(void) {
  if (answered) {
    fprintf(stderr, "fake_cpuid: answered %ld CPUID instructions\n", answered);
  } else if (dlopen(library, RTLD_NOW | RTLD_NOLOAD)) { /* jaxlib ran, but not the patched copy */
    fprintf(stderr, "fake_cpuid: %s: expected the patched copy, found the original loaded\n", library);
  }
}

__attribute__((constructor)) static void install(void) {
  const char *path = getenv("FAKE_CPUID_SITES");
  FILE *f = path ? fopen(path, "r") : NULL;
  if (!f) {
    fprintf(stderr, "fake_cpuid: FAKE_CPUID_SITES: expected a readable file of offsets, found %s\n", path ? path : "unset");
    exit(2);
  }
  unsigned long site;
  while (fscanf(f, "%lx", &site) == 1) {
    if (n_sites == 4096) {
      fprintf(stderr, "fake_cpuid: %s: expected at most 4096 sites, found more\n", path);
      exit(2);
    }
    sites[n_sites++] = site;
  }
  fclose(f);
  qsort(sites, n_sites, sizeof sites[0], cmp);
  if (getenv("FAKE_CPUID_LIBRARY")) library = getenv("FAKE_CPUID_LIBRARY");
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
