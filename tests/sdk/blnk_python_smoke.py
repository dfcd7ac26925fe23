"""Blnk's official Python SDK (blnk-python 1.6.0), unchanged, against a real Keel server.

Usage: python blnk_python_smoke.py path/to/keel
Starts keel on a free port with a fresh SQLite file and a webhook receiver, then walks through
ledgers, balances, transactions (applied, inflight commit/void, refund) and balance monitors the way
Blnk's docs call them, and checks that the monitor's webhook arrives.
"""

import http.server
import json
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from blnk_sdk import Blnk, BlnkClientOptions

received = []


class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def start_keel(binary, webhook_url):
    db = tempfile.mkdtemp() + "/keel.db"
    proc = subprocess.Popen(
        [binary, "serve", "--bind", "127.0.0.1", "--port", "0", "--database", f"sqlite://{db}",
         "--api-key", "sdk-key", "--webhook-url", webhook_url,
         "--tokenization-secret", "0123456789abcdef0123456789abcdef"],
        stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if "listening on " in line:
            address = line.split("listening on ")[1].strip()
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            return proc, f"http://{address}"
    raise SystemExit("keel did not start")


def ok(response, status, what):
    assert response.status == status, f"{what}: expected {status}, got {response.status}: {response.to_dict()}"
    return response.data


def main():
    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    proc, base = start_keel(sys.argv[1], f"http://127.0.0.1:{hook.server_port}/hook")
    checks = 0
    try:
        blnk = Blnk.init("sdk-key", BlnkClientOptions(base_url=base))
        hook_url = f"http://127.0.0.1:{hook.server_port}/transaction-hook"
        post_hook = ok(blnk.hooks.create({"name": "audit", "url": hook_url, "type": "POST_TRANSACTION",
                                          "active": True, "timeout": 5, "retry_count": 2}), 201, "hook")
        assert post_hook["id"].startswith("hook_") and post_hook["retry_count"] == 2, post_hook; checks += 1
        ledger = ok(blnk.ledgers.create({"name": "SDK ledger", "meta_data": {"project": "keel"}}), 201, "ledger")
        assert ledger["ledger_id"].startswith("ldg_"); checks += 1
        assert ok(blnk.ledgers.get(ledger["ledger_id"]), 200, "get ledger")["name"] == "SDK ledger"; checks += 1

        balance = ok(blnk.ledger_balances.create({"ledger_id": ledger["ledger_id"], "currency": "USD"}), 201, "balance")
        other = ok(blnk.ledger_balances.create({"ledger_id": ledger["ledger_id"], "currency": "USD"}), 201, "balance")
        assert balance["balance"] == 0; checks += 1

        monitor = ok(blnk.balance_monitor.create({
            "balance_id": balance["balance_id"],
            "condition": {"field": "balance", "operator": ">", "value": 1000, "precision": 100},
            "description": "Tier 1 Account",
            "call_back_url": f"http://127.0.0.1:{hook.server_port}/monitor",
        }), 201, "monitor")
        assert monitor["condition"]["precise_value"] == 100000; checks += 1
        assert monitor["description"] == "Tier 1 Account"; checks += 1
        assert ok(blnk.balance_monitor.get(monitor["monitor_id"]), 200, "get monitor")["monitor_id"] == monitor["monitor_id"]; checks += 1
        assert len(ok(blnk.balance_monitor.list(), 200, "list monitors")) == 1; checks += 1
        assert len(ok(blnk.balance_monitor.list_by_balance_id(balance["balance_id"]), 200, "by balance")) == 1; checks += 1
        updated = ok(blnk.balance_monitor.update(monitor["monitor_id"], {
            "balance_id": balance["balance_id"],
            "condition": {"field": "balance", "operator": ">", "value": 500, "precision": 100},
            "description": "Tier 1 Account",
            "call_back_url": f"http://127.0.0.1:{hook.server_port}/monitor",
        }), 200, "update monitor")
        assert updated["condition"]["precise_value"] == 50000; checks += 1

        funded = ok(blnk.transactions.create({
            "amount": 750.5, "precision": 100, "reference": f"fund-{uuid.uuid4()}", "currency": "USD",
            "source": "@World", "destination": balance["balance_id"], "description": "funding", "skip_queue": True,
        }), 201, "funding")
        assert funded["status"] == "APPLIED" and funded["precise_amount"] == 75050; checks += 1
        assert ok(blnk.ledger_balances.get(balance["balance_id"]), 200, "balance")["balance"] == 75050; checks += 1
        assert ok(blnk.transactions.get_by_reference(funded["reference"]), 200, "by ref")["transaction_id"] == funded["transaction_id"]; checks += 1

        # A preview (dry_run) answers 200 with Blnk's TransactionPreview and moves nothing.
        preview = ok(blnk.transactions.create({
            "amount": 10, "precision": 100, "reference": f"preview-{uuid.uuid4()}", "currency": "USD",
            "source": balance["balance_id"], "destination": other["balance_id"], "description": "preview",
            "dry_run": True,
        }), 200, "dry run")
        assert preview["dry_run"] is True and preview["would_apply"] is True, preview; checks += 1
        assert preview["precise_amount"] == "1000" and preview["status"] == "APPLIED", preview; checks += 1
        source = [b for b in preview["balances"] if b["role"] == "source"][0]
        assert (source["current_balance"], source["resulting_balance"]) == ("75050", "74050"), source; checks += 1
        assert ok(blnk.ledger_balances.get(balance["balance_id"]), 200, "balance")["balance"] == 75050; checks += 1
        assert blnk.transactions.get_by_reference(preview["reference"]).status == 404; checks += 1

        split = ok(blnk.transactions.create({
            "amount": 3, "precision": 100, "reference": f"split-{uuid.uuid4()}", "currency": "USD",
            "source": balance["balance_id"], "description": "split", "skip_queue": True,
            "destinations": [{"identifier": other["balance_id"], "distribution": "50%"},
                             {"identifier": "@Fees", "distribution": "left"}],
        }), 201, "split")
        assert [d["precise_amount"] for d in split["destinations"]] == [150, 150], split; checks += 1
        assert ok(blnk.ledger_balances.get(balance["balance_id"]), 200, "balance")["balance"] == 74750; checks += 1
        leg = ok(blnk.transactions.get(split["destinations"][0]["transaction_id"]), 200, "leg")
        assert leg["parent_transaction"] == split["transaction_id"], leg; checks += 1

        bulk = ok(blnk.transactions.create_bulk({"atomic": True, "skip_queue": True, "transactions": [
            {"amount": 1, "precision": 100, "reference": f"bulk-{uuid.uuid4()}", "currency": "USD",
             "source": balance["balance_id"], "destination": other["balance_id"], "description": f"bulk {i}"}
            for i in range(3)]}), 201, "bulk")
        assert bulk["status"] == "applied" and bulk["transaction_count"] == 3, bulk; checks += 1
        assert ok(blnk.ledger_balances.get(balance["balance_id"]), 200, "balance")["balance"] == 74450; checks += 1

        holds = [ok(blnk.transactions.create({
            "amount": 1, "precision": 100, "reference": f"bulkhold-{uuid.uuid4()}", "currency": "USD",
            "source": balance["balance_id"], "destination": other["balance_id"], "description": "hold",
            "inflight": True, "skip_queue": True}), 201, "hold")["transaction_id"] for _ in range(2)]
        committed_bulk = ok(blnk.transactions.bulk_commit_inflight(
            {"transactions": [{"transaction_id": holds[0]}], "skip_queue": True}), 200, "bulk commit")
        assert committed_bulk["succeeded"] == 1, committed_bulk; checks += 1
        voided_bulk = ok(blnk.transactions.bulk_void_inflight({"transaction_ids": holds, "skip_queue": True}), 200, "bulk void")
        assert [r["status"] for r in voided_bulk["results"]] == ["failed", "succeeded"], voided_bulk; checks += 1
        assert voided_bulk["results"][0]["code"] == "ALREADY_COMMITTED", voided_bulk; checks += 1
        assert ok(blnk.ledger_balances.get(balance["balance_id"]), 200, "balance")["balance"] == 74350; checks += 1

        held = ok(blnk.transactions.create({
            "amount": 100, "precision": 100, "reference": f"hold-{uuid.uuid4()}", "currency": "USD",
            "source": balance["balance_id"], "destination": other["balance_id"], "description": "hold",
            "inflight": True, "skip_queue": True,
        }), 201, "inflight")
        assert held["status"] == "INFLIGHT"; checks += 1
        committed = ok(blnk.transactions.update_status(held["transaction_id"], {"status": "commit", "amount": 40}), 200, "commit")
        assert committed["precise_amount"] == 4000; checks += 1
        void_preview = ok(blnk.transactions.update_status(held["transaction_id"], {"status": "void", "dry_run": True}), 200, "void preview")
        assert void_preview["operation"] == "void" and void_preview["precise_amount"] == "6000", void_preview; checks += 1
        ok(blnk.transactions.update_status(held["transaction_id"], {"status": "void"}), 200, "void"); checks += 1
        refund_preview = ok(blnk.transactions.refund(committed["transaction_id"], {"dry_run": True}), 200, "refund preview")
        assert refund_preview["would_apply"] is True, refund_preview; checks += 1
        tagged = ok(blnk.metadata.update(committed["transaction_id"], {"meta_data": {"invoice": "INV-1"}}), 200, "metadata")
        assert tagged["meta_data"]["invoice"] == "INV-1", tagged; checks += 1
        key = ok(blnk.api_keys.create({"name": "sdk", "owner": "sdk-owner", "scopes": ["ledgers:read"],
                                       "expires_at": "2030-01-01T00:00:00Z"}), 201, "api key")
        assert key["owner_id"] == "sdk-owner", key; checks += 1
        assert [k["api_key_id"] for k in ok(blnk.api_keys.list({"owner": "sdk-owner"}), 200, "keys")] == [key["api_key_id"]]; checks += 1
        revoked = blnk.api_keys.delete(key["api_key_id"], {"owner": "sdk-owner"})
        assert revoked.status == 204, revoked.to_dict(); checks += 1
        refund = ok(blnk.transactions.refund(committed["transaction_id"]), 201, "refund")
        assert refund["source"] == other["balance_id"]; checks += 1

        # A bulk request's preview names the item that would fail, and moves nothing.
        before = ok(blnk.ledger_balances.get(balance["balance_id"]), 200, "balance")["balance"]
        bulk_preview = ok(blnk.transactions.create_bulk({"atomic": True, "skip_queue": True, "dry_run": True,
            "transactions": [
                {"amount": amount, "precision": 100, "reference": f"bulkpreview-{uuid.uuid4()}", "currency": "USD",
                 "source": balance["balance_id"], "destination": other["balance_id"], "description": "preview"}
                for amount in (1, 10**7)]}), 200, "bulk dry run")
        assert bulk_preview["would_apply"] is False and bulk_preview["atomic"] is True, bulk_preview; checks += 1
        assert bulk_preview["results"][1]["rejection"]["code"] == "TXN_INSUFFICIENT_FUNDS", bulk_preview; checks += 1
        assert ok(blnk.ledger_balances.get(balance["balance_id"]), 200, "balance")["balance"] == before; checks += 1
        commit_preview = ok(blnk.transactions.bulk_commit_inflight(
            {"transactions": [{"transaction_id": holds[1]}], "dry_run": True}), 200, "bulk commit dry run")
        assert commit_preview["results"][0]["rejection"]["code"] == "TXN_ALREADY_VOIDED", commit_preview; checks += 1

        # The split's id refunds every leg; a batch's id commits every hold and tags every item.
        refunded_split = ok(blnk.transactions.refund(split["transaction_id"], {"skip_queue": True}), 201, "refund split")
        assert refunded_split["parent_transaction"] == split["destinations"][0]["transaction_id"], refunded_split; checks += 1
        assert ok(blnk.ledger_balances.get(balance["balance_id"]), 200, "balance")["balance"] == before + 300; checks += 1
        held_batch = ok(blnk.transactions.create_bulk({"inflight": True, "skip_queue": True, "transactions": [
            {"amount": 1, "precision": 100, "reference": f"heldbatch-{uuid.uuid4()}", "currency": "USD",
             "source": balance["balance_id"], "destination": other["balance_id"], "description": "held"}
            for _ in range(2)]}), 201, "inflight bulk")
        committed_batch = ok(blnk.transactions.update_status(held_batch["batch_id"], {"status": "commit"}), 200, "commit batch")
        assert committed_batch["status"] == "APPLIED", committed_batch; checks += 1
        assert ok(blnk.ledger_balances.get(balance["balance_id"]), 200, "balance")["balance"] == before + 100; checks += 1
        tagged_batch = ok(blnk.metadata.update(held_batch["batch_id"], {"meta_data": {"batch": "B-1"}}), 200, "batch metadata")
        assert tagged_batch["meta_data"] == {"batch": "B-1"}, tagged_batch; checks += 1

        bad = blnk.transactions.create({
            "amount": 10**9, "precision": 100, "reference": f"big-{uuid.uuid4()}", "currency": "USD",
            "source": balance["balance_id"], "destination": other["balance_id"], "description": "x", "skip_queue": True})
        assert bad.status == 400, bad.to_dict(); checks += 1

        deadline = time.time() + 10
        while time.time() < deadline and not any(r.get("event") == "balance.monitor" for r in received):
            time.sleep(0.05)
        event = next(r for r in received if r.get("event") == "balance.monitor")
        assert event["data"]["monitor_id"] == monitor["monitor_id"]; checks += 1
        assert event["data"]["balance"]["balance"] == 75050; checks += 1

        # The POST_TRANSACTION hook registered first was called with Blnk's hook body.
        deadline = time.time() + 10
        while time.time() < deadline and not any(r.get("hook_type") == "POST_TRANSACTION" for r in received):
            time.sleep(0.05)
        call = next(r for r in received if r.get("hook_type") == "POST_TRANSACTION")
        assert call["data"]["transaction_id"] == call["transaction_id"], call; checks += 1
        # Filters, as the SDK sends them: the ledger's balances, with a count.
        found = ok(blnk.search.filter({"filters": [
            {"field": "ledger_id", "operator": "eq", "value": ledger["ledger_id"]},
            {"field": "balance", "operator": "gte", "value": 0}], "include_count": True}, "balances"), 200, "filter")
        assert found["total_count"] == len(found["data"]) >= 1, found; checks += 1
        assert all(b["ledger_id"] == ledger["ledger_id"] for b in found["data"]), found; checks += 1
        usd = ok(blnk.search.filter({"filters": [{"field": "currency", "operator": "in", "values": ["USD"]}],
                                     "sort_by": "amount", "sort_order": "asc", "limit": 5}, "transactions"), 200, "filter")
        assert 1 <= len(usd) <= 5 and all(t["currency"] == "USD" for t in usd), usd; checks += 1
        # Identities: created, linked to a balance, tokenized and read back, as the SDK sends them.
        person = ok(blnk.identity.create({"identity_type": "individual", "first_name": "Ada", "last_name": "Obi",
                                          "email_address": "ada@example.com", "dob": "1990-05-17T00:00:00Z"}),
                    201, "identity")
        pid = person["identity_id"]
        assert ok(blnk.identity.get(pid), 200, "get identity")["first_name"] == "Ada"; checks += 1
        assert any(i["identity_id"] == pid for i in ok(blnk.identity.list(), 200, "identities")); checks += 1
        ok(blnk.identity.update(pid, {"identity_type": "individual", "first_name": "Ada", "last_name": "Obi-Eze",
                                      "email_address": "ada@example.com"}), 200, "update identity"); checks += 1
        ok(blnk.ledger_balances.update_identity(balance["balance_id"], {"identity_id": pid}), 200, "link"); checks += 1
        ok(blnk.identity.tokenize_field(pid, "email_address"), 200, "tokenize field"); checks += 1
        ok(blnk.identity.tokenize(pid, {"fields": ["first_name"]}), 200, "tokenize"); checks += 1
        fields = ok(blnk.identity.get_tokenized_fields(pid), 200, "tokenized fields")["tokenized_fields"]
        assert sorted(fields) == ["email_address", "first_name"], fields; checks += 1
        assert ok(blnk.identity.detokenize_field(pid, "email_address"), 200, "detokenize")["value"] == "ada@example.com"
        checks += 1
        opened = ok(blnk.identity.detokenize(pid, {"fields": ["first_name"]}), 200, "detokenize fields")
        assert opened["fields"] == {"first_name": "Ada"}, opened; checks += 1
        found = ok(blnk.search.filter({"filters": [{"field": "last_name", "operator": "eq", "value": "Obi-Eze"}]},
                                      "identities"), 200, "filter identities")
        assert [i["identity_id"] for i in found] == [pid], found; checks += 1
        then = ok(blnk.ledger_balances.get_at(balance["balance_id"], {"timestamp": "2030-01-01T00:00:00Z"}), 200, "at")
        now = ok(blnk.ledger_balances.get(balance["balance_id"]), 200, "balance")
        assert then["balance"]["balance"] == now["balance"], (then, now); checks += 1
        early = ok(blnk.ledger_balances.get_at(balance["balance_id"], {"timestamp": "2000-01-01T00:00:00Z",
                                                                       "from_source": True}), 200, "at")
        assert early["balance"]["balance"] == 0 and early["from_source"] is True, early; checks += 1
        snap = ok(blnk.ledger_balances.create_snapshot({"batch_size": 500}), 200, "snapshots")
        assert snap == {"message": "Snapshotting in progress. should be completed shortly"}, snap; checks += 1
        # Search, from Keel's own index (written a moment after the records).
        deadline, hits = time.time() + 10, []
        while time.time() < deadline and not hits:
            hits = ok(blnk.search.search({"q": "Obi-Eze", "query_by": "first_name,last_name"}, "identities"),
                      200, "search")["hits"]
            time.sleep(0.05)
        assert [h["document"]["identity_id"] for h in hits] == [pid], hits; checks += 1
        multi = ok(blnk.search.multi_search({"searches": [{"collection": "ledgers", "q": "*", "per_page": 1},
                                                          {"collection": "transactions", "q": "*",
                                                           "filter_by": "currency:=USD", "sort_by": "amount:desc"}]}),
                   200, "multi-search")
        assert len(multi["results"]) == 2 and multi["results"][1]["found"] >= 1, multi; checks += 1
        assert isinstance(multi["results"][1]["hits"][0]["document"]["created_at"], int), multi; checks += 1
        started = ok(blnk.search.start_reindex({"batch_size": 100}), 200, "reindex")
        assert started["message"] == "Reindex operation started", started; checks += 1
        assert ok(blnk.search.get_reindex_status(), 200, "reindex status")["status"] in ("in_progress", "completed")
        checks += 1
        listed = ok(blnk.hooks.list({"type": "POST_TRANSACTION"}), 200, "hooks")
        assert [h["id"] for h in listed] == [post_hook["id"]], listed; checks += 1
        changed = ok(blnk.hooks.update(post_hook["id"], {"name": "audit-2", "url": hook_url,
                                                         "type": "PRE_TRANSACTION", "active": False,
                                                         "timeout": 5, "retry_count": 1}), 200, "hook update")
        assert changed["type"] == "PRE_TRANSACTION" and not changed["active"], changed; checks += 1
        assert ok(blnk.hooks.get(post_hook["id"]), 200, "hook")["name"] == "audit-2"; checks += 1
        ok(blnk.hooks.delete(post_hook["id"]), 200, "hook delete"); checks += 1
        assert blnk.hooks.get(post_hook["id"]).status == 404; checks += 1

        deleted = ok(blnk.balance_monitor.delete(monitor["monitor_id"]), 200, "delete monitor")
        assert deleted["message"] == "BalanceMonitor deleted successfully"; checks += 1
        assert blnk.balance_monitor.get(monitor["monitor_id"]).status == 404; checks += 1
        print(f"blnk-python: {checks} passed, 0 failed")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
