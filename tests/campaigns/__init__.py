"""Reliability campaigns (docs/reliability.md): crashes, faults, hostile input, secrets, local faults."""
