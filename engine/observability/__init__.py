"""What operators see: Prometheus metrics and the redaction that keeps secrets out of logs."""
