-- wrk script of bench/queue-load.sh: POSTs signed events, each with its
-- own id (the queue deduplicates by id), and counts the answers.
--
-- Environment: QL_IDS, a file written by `queuegen ids` (QL_IDS.prefix,
-- QL_IDS.suffix, and one "<id>\t<hex HMAC>" line per event); QL_HDR, the
-- signature header; QL_ALGO, its value's prefix ("sha256=" or "sha512=").
-- Run with -t1: the lines are read in order, each once; if a run outlasts
-- the file it starts over and reports it (wrapped > 0: ids repeat).

local ids = assert(os.getenv("QL_IDS"), "QL_IDS not set")
local hdr = assert(os.getenv("QL_HDR"), "QL_HDR not set")
local algo = assert(os.getenv("QL_ALGO"), "QL_ALGO not set")

local function slurp(path)
	local f = assert(io.open(path, "rb"))
	local s = f:read("*a")
	f:close()
	return s
end
local prefix, suffix = slurp(ids .. ".prefix"), slurp(ids .. ".suffix")
local f = assert(io.open(ids, "rb"))
local headers = { ["Content-Type"] = "application/json" }

-- globals: read by done() through thread:get
sent, wrapped, queued, duplicate, ok, other, non2xx = 0, 0, 0, 0, 0, 0, 0

request = function()
	local line = f:read("*l")
	if not line then
		wrapped = wrapped + 1
		f:seek("set", 0)
		line = f:read("*l")
	end
	sent = sent + 1
	local tab = line:find("\t", 1, true)
	headers[hdr] = algo .. line:sub(tab + 1)
	return wrk.format("POST", nil, headers, prefix .. line:sub(1, tab - 1) .. suffix)
end

response = function(status, _, body)
	if status < 200 or status > 299 then
		non2xx = non2xx + 1
	elseif body:find('"queued":true', 1, true) then
		queued = queued + 1
	elseif body:find('"duplicate":true', 1, true) then
		duplicate = duplicate + 1
	elseif body == "ok" then
		ok = ok + 1
	else
		other = other + 1
	end
end

local threads = {}
setup = function(thread)
	table.insert(threads, thread)
end

done = function()
	for _, t in ipairs(threads) do
		io.write(string.format("QL sent=%d wrapped=%d queued=%d duplicate=%d ok=%d other=%d non2xx=%d\n",
			t:get("sent"), t:get("wrapped"), t:get("queued"), t:get("duplicate"), t:get("ok"),
			t:get("other"), t:get("non2xx")))
	end
end
