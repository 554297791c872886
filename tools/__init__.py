"""Rehearsal and measurement tools: benchmarks, load, the production rehearsal, fault drills."""
