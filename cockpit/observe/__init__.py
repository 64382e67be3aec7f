"""Seeing inside a running server: Prometheus metrics, OpenTelemetry traces, JSON logs.

A base-layer package (no imports of ours), so every layer that has something to report, the
proxy included, can record it: `metrics` holds the metric families and one cheap recording
function per event, `tracing` the `span` helper (free when tracing is off), `logs` the JSON
log format with the request id.
"""
