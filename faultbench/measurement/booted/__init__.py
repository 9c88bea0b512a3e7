"""Booted kernels: boot an image under QEMU (virtme-ng), run a command or a share of a run's
rounds there, plan the boots of several kernels, and clean up after a dead host process.
These change with QEMU, virtme-ng and the boot plan, never with the measurement itself.
Standard library only, like the rest of the measurement plane (docs/architecture.md)."""
