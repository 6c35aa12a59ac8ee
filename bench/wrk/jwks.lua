-- GET /.well-known/jwks.json
package.path = os.getenv("BENCH_WRK_DIR") .. "/?.lua;" .. package.path
local common = require("common")
wrk.method = "GET"
wrk.path = "/.well-known/jwks.json"
done = common.done
