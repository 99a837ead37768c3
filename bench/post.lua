-- wrk: POST a form body from $BENCH_BODY (headers such as Authorization come from -H).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = os.getenv("BENCH_BODY")
dofile(os.getenv("BENCH_STATS"))
