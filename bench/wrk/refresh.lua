-- POST /oauth/token, refresh_token grant, with one non-rotating refresh token
package.path = os.getenv("BENCH_WRK_DIR") .. "/?.lua;" .. package.path
local common = require("common")
wrk.method = "POST"
wrk.path = "/oauth/token"
wrk.headers["Content-Type"] = "application/json"
wrk.body = string.format(
  '{"grant_type":"refresh_token","client_id":"%s","refresh_token":"%s"}',
  os.getenv("BENCH_CLIENT_ID"), os.getenv("BENCH_REFRESH_TOKEN"))
done = common.done
