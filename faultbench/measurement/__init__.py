"""The measurement plane: everything that touches the kernel (spec -> C -> sample, knobs,
runner, results directory, booted guests).

Standard library and the compiled cffi module only: it also runs inside emulated guests,
where importing pandas or scipy would cost seconds per boot.
"""
