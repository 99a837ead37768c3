-- wrk reporter: one JSON line with throughput, latency percentiles and errors
-- ("errors": every kind; "status_errors": answers with a status of 400 or more).
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
               + summary.errors.status + summary.errors.timeout
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "p50_us": %d, "p99_us": %d, "p999_us": %d, '
    .. '"errors": %d, "status_errors": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9), errors, summary.errors.status))
end
