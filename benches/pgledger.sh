#!/usr/bin/env bash
# The peer for Keel's PostgreSQL figures: pgledger (github.com/pgr0ss/pgledger), a ledger written as
# PL/pgSQL functions, each transfer its own transaction, driven by pgbench on the same PostgreSQL.
# Its SQL is read at run time from a checkout you give (never vendored):
#
#   git clone https://github.com/pgr0ss/pgledger /tmp/pgledger
#   benches/pgledger.sh /tmp/pgledger [SECONDS=10] [CLIENTS=64] [ACCOUNTS=10000]
#
# Prints pgbench's transfers per second (tps) for one round. Interleave rounds with Keel's
#   cargo bench --bench transfers -- --postgres postgres://postgres@127.0.0.1:5432/test \
#       --clients 64 --balances 10000 --seconds 10 --http-only
# (docs/performance.md, "PostgreSQL beside pgledger"). PGHOST/PGPORT/PGUSER pick the server
# (default 127.0.0.1:5432, postgres); the database pgledger_bench is made afresh each round.
set -euo pipefail
checkout=${1:?usage: benches/pgledger.sh PGLEDGER_CHECKOUT [SECONDS] [CLIENTS] [ACCOUNTS]}
seconds=${2:-10}
clients=${3:-64}
accounts=${4:-10000}
[ -f "$checkout/pgledger.sql" ] || { echo "no pgledger.sql in $checkout" >&2; exit 1; }
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
db=pgledger_bench
psql -q -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" 2>/dev/null
# As its justfile's dbload: the vendored ULID functions, then pgledger itself.
ulid=$checkout/vendor/scoville-pgsql-ulid
psql -q -d $db -v ON_ERROR_STOP=1 --single-transaction -f "$ulid/ulid-to-uuid.sql" -f "$ulid/uuid-to-ulid.sql" \
    -f "$checkout/pgledger.sql" >/dev/null
psql -q -d $db -v ON_ERROR_STOP=1 >/dev/null <<SQL
CREATE TABLE bench_accounts (n INT PRIMARY KEY, id TEXT NOT NULL);
INSERT INTO bench_accounts SELECT n, a.id
FROM generate_series(1, $accounts) AS n CROSS JOIN LATERAL pgledger_create_account('acct ' || n, 'USD') AS a;
VACUUM ANALYZE;
SQL
script=$(mktemp)
trap 'rm -f "$script"' EXIT
# Two different accounts each time, as Keel's benchmark picks two different balances.
cat > "$script" <<SQL
\set a random(1, $accounts)
\set b 1 + (:a + random(0, $accounts - 2)) % $accounts
SELECT id FROM pgledger_create_transfer((SELECT id FROM bench_accounts WHERE n = :a),
    (SELECT id FROM bench_accounts WHERE n = :b), 1);
SQL
pgbench -n -M prepared -c "$clients" -j 2 -T "$seconds" -f "$script" $db 2>&1 | grep -E "^(tps|latency|number of (transactions|failed))"
psql -q -d postgres -c "DROP DATABASE $db"
