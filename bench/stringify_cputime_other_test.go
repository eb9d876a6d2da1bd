//go:build !linux

package bench

import "time"

// threadCPU is not measured here: the CPU-time ratios are left out.
func threadCPU() time.Duration { return 0 }
