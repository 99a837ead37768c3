-- wrk: POST Account/login with the benchmark user's credentials (from the environment).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Origin"] = os.getenv("BENCH_ORIGIN")
wrk.body = "username=bench&password=correct+horse+battery+staple"
dofile(os.getenv("BENCH_STATS"))
