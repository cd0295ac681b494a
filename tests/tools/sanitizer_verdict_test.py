#!/usr/bin/env python3
"""tools/sanitizer_verdict.py: a racecheck/synccheck report passes only when every record is in cuBLASLt's kernels
and the tests passed; ours, unnamed records, crashes, cut reports and failed tests fail (stdlib only, < 1 s)."""
import os
import subprocess
import sys
import tempfile

TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "sanitizer_verdict.py")
PASSED = "[==========] 3 tests from 1 test suite ran. (10 ms total)\n[  PASSED  ] 3 tests.\n"
CLEAN = "========= COMPUTE-SANITIZER\n" + PASSED + \
    "========= RACECHECK SUMMARY: 0 hazards displayed (0 errors, 0 warnings)\n"
NVJET = """========= COMPUTE-SANITIZER
========= Error: Race reported between Write access at nvjet_sm90_tst_64x80_64x11_1x4_h_bz_NNT+0x1a30
=========     and Read access at nvjet_sm90_tst_64x80_64x11_1x4_h_bz_NNT+0x1c40 [416 hazards]
=========
========= Warning: Race reported between Read access at nvjet_sm90_tst_64x48_splitK_TNT+0x200
=========     and Write access at nvjet_sm90_tst_64x48_splitK_TNT+0x210 [8 hazards]
=========
""" + PASSED + "========= RACECHECK SUMMARY: 2 hazards displayed (1 error, 1 warning)\n"
OURS = """========= COMPUTE-SANITIZER
========= Error: Race reported between Write access at void qsft::cuda::<unnamed>::rmsnorm_kernel<4>(const float *)+0x90 in rmsnorm.cu:41
=========     and Read access at void qsft::cuda::<unnamed>::rmsnorm_kernel<4>(const float *)+0xa0 in rmsnorm.cu:44 [2048 hazards]
=========
""" + PASSED + "========= RACECHECK SUMMARY: 1 hazard displayed (1 error, 0 warnings)\n"
MIXED = """========= Error: Race reported between Write access at nvjet_sm90_tst_64x16+0x90
=========     and Read access at void qsft::cuda::scatter(float *)+0xa0 in x.cu:3 [4 hazards]
=========
""" + PASSED + "========= RACECHECK SUMMARY: 1 hazard displayed (1 error, 0 warnings)\n"
OLD_FORMAT = """========= Error: Race reported between Write access at 0x278 in nvjet_sm90_tst_128x64_NNT
=========     and Read access at 0x298 in nvjet_sm90_tst_128x64_NNT [6144 hazards]
=========
""" + PASSED + "========= RACECHECK SUMMARY: 1 hazard displayed (1 error, 0 warnings)\n"
CRASH = """========= COMPUTE-SANITIZER
[ RUN      ] GpuGemm.LoraMixedDtypesMatchCpu
========= Internal Sanitizer Error: The Sanitizer failed to handle a hardware exception.
=========
[  FAILED  ] GpuGemm.LoraMixedDtypesMatchCpu (150 ms)
========= Target application returned an error
========= RACECHECK SUMMARY: 1 hazard displayed (1 error, 0 warnings)
"""
UNNAMED = """========= Barrier error detected. Divergent thread(s) in block
=========     by thread (0,0,0) in block (0,0,0)
=========
""" + PASSED + "========= ERROR SUMMARY: 1 error\n"
SYNC_FOREIGN = """========= Barrier error detected. Divergent thread(s) in warp
=========     at cutlass::Kernel2<cutlass_80_tensorop_bf16_s16816gemm>(Params)+0x2c8
=========     by thread (0,0,0) in block (0,0,0)
=========
""" + PASSED + "========= ERROR SUMMARY: 1 error\n"
CUT = NVJET.replace("RACECHECK SUMMARY: 2 hazards",
                    "ERROR SUMMARY: 5 errors were not printed. Use --print-limit option\n"
                    "========= RACECHECK SUMMARY: 2 hazards")
TEST_FAILED = NVJET.replace("[  PASSED  ] 3 tests.", "[  FAILED  ] GpuLoss.TinyVocab (3 ms)")
UNCOUNTED = "========= COMPUTE-SANITIZER\n" + PASSED + "========= RACECHECK SUMMARY: 3 hazards displayed " \
    "(3 errors, 0 warnings)\n"
GLUED = NVJET.replace("[  PASSED  ] 3 tests.\n", "[  PASSED  ] 3 tests.\n[ RUN      ] Partial line "
                      "without newline========= Error: Race reported between Write access at "
                      "void qsft::cuda::k(float *)+0x10\n[==========] interleaved test output\n"
                      "=========     and Read access at void qsft::cuda::k(float *)+0x20 [2 hazards]\n=========\n")
UNFINISHED = "========= COMPUTE-SANITIZER\n[ RUN      ] GpuLoss.TinyVocab\n"

CASES = [  # (name, report, exit status, expected status, text the verdict line must hold)
    ("clean", CLEAN, 0, 0, "no records"),
    ("hazards only in nvjet kernels", NVJET, 1, 0, "nvjet_sm90_tst_64x80_64x11_1x4_h_bz_NNT (1)"),
    ("older report format, nvjet", OLD_FORMAT, 1, 0, "all in foreign kernels"),
    ("synccheck record in a cutlass kernel", SYNC_FOREIGN, 1, 0, "cutlass"),
    ("a hazard in our kernel", OURS, 1, 1, "rmsnorm_kernel"),
    ("one side ours, one side nvjet", MIXED, 1, 1, "qsft::cuda::scatter"),
    ("internal sanitizer error", CRASH, 1, 1, "internal sanitizer error"),
    ("a record naming no kernel", UNNAMED, 1, 1, "no named kernel"),
    ("report cut by --print-limit", CUT, 1, 1, "report cut short"),
    ("a failed test", TEST_FAILED, 1, 1, "the application failed"),
    ("our record glued to the test's output line", GLUED, 1, 1, "qsft::cuda::k"),
    ("summary counts hazards no record shows", UNCOUNTED, 1, 1, "no record parsed"),
    ("killed before its summary", UNFINISHED, 0, 1, "no sanitizer summary"),
    ("nonzero exit, no record, clean summary", CLEAN, 3, 1, "exit status 3 without a record"),
]


def run_case(d, report, status):
    path = os.path.join(d, "report.txt")
    with open(path, "w") as f:
        f.write(report)
    fake = "import sys; sys.stdout.write(open(sys.argv[1]).read()); sys.exit(int(sys.argv[2]))"
    return subprocess.run([sys.executable, TOOL, "--", sys.executable, "-c", fake, path, str(status)],
                          capture_output=True, text=True)


def main():
    failures = 0
    with tempfile.TemporaryDirectory() as d:
        for name, report, status, want, needle in CASES:
            p = run_case(d, report, status)
            last = p.stdout.rstrip("\n").rsplit("\n", 1)[-1]
            ok = p.returncode == want and needle in last and p.stdout.startswith(report)
            failures += not ok
            print("%s %-45s status %d (want %d): %s" % ("ok  " if ok else "FAIL", name, p.returncode, want, last))
    p = subprocess.run([sys.executable, TOOL], capture_output=True, text=True)
    usage_ok = p.returncode == 2 and "no command" in p.stderr
    failures += not usage_ok
    print("%s no command is a usage error (status %d)" % ("ok  " if usage_ok else "FAIL", p.returncode))
    p = subprocess.run([sys.executable, TOOL, "--", "/nonexistent/compute-sanitizer"], capture_output=True, text=True)
    missing_ok = p.returncode == 127 and "cannot run" in p.stdout
    failures += not missing_ok
    print("%s a command that cannot start is status 127 (status %d)" % ("ok  " if missing_ok else "FAIL",
                                                                         p.returncode))
    print("%d of %d checks failed" % (failures, len(CASES) + 2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
