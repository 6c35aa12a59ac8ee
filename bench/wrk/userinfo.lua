-- GET /userinfo with one access token (BENCH_ACCESS_TOKEN)
package.path = os.getenv("BENCH_WRK_DIR") .. "/?.lua;" .. package.path
local common = require("common")
wrk.method = "GET"
wrk.path = "/userinfo"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_ACCESS_TOKEN")
done = common.done
