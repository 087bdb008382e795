#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/seeds/<target>/ from Desk's documented payload shapes
(docs: Desk's OpenAPI spec zoho/zohodesk-oas v1.0/Ticket.json, Contact.json; the webhook and workflow
notification shapes of shared/reference/zoho-desk-api.md §D; config/example.toml; the simulator's JWTs).
Run from fuzz/: python3 make_seeds.py. JWT seeds need FUZZ_JWT_KEY (a PEM RSA key whose public half is
jwks.json); without it the JWT seeds already committed are kept."""
import base64, json, os, pathlib, subprocess

ORG = "60000000001"
TICKET = {
    "id": "1892000000042032", "ticketNumber": "101", "subject": "Real Time analysis Requirement",
    "dueDate": "2016-06-21T16:16:16.000Z", "departmentId": "1892000000006907", "channel": "Email",
    "isRead": False, "onholdTime": None, "closedTime": None, "sharedCount": "0",
    "responseDueDate": "2017-09-05T11:21:07.000Z", "status": "Open", "statusType": "Open",
    "priority": "High", "assigneeId": "1892000000056007", "contactId": "1892000000042001",
    "email": "carol@zylker.com", "phone": "1 888 900 9646", "createdTime": "2013-11-04T11:21:07.000Z",
    "modifiedTime": "2026-01-05T09:12:44.000Z", "threadCount": "121", "commentCount": "1",
    "isDeleted": False, "isTrashed": False, "isSpam": False, "customerResponseTime": "2013-11-04T11:21:07.912Z",
    "source": {"appName": None, "extId": None, "type": "SYSTEM", "permalink": None, "appPhotoURL": None},
    "contact": {"firstName": "Lucas", "lastName": "Carol", "email": "carol@zylker.com", "id": "1892000000042001",
                "account": {"accountName": "Zylker", "id": "1892000000975382"}},
    "cf": {"cf_permanentaddress": None, "cf_dateofpurchase": None, "cf_phone": None, "cf_numberofitems": "3",
           "cf_url": None, "cf_secondaryemail": None, "cf_severitypercentage": "0.0", "cf_modelname": "F3 2017"},
    "customFields": {"Model Name": "F3 2017", "Number of Items": "3"},
    "webUrl": "https://desk.zoho.com/support/zylker/ShowHomePage.do#Cases/dv/1892000000042032",
}
CONTACT = {
    "id": "1892000000042001", "firstName": "Lucas", "lastName": "Carol", "email": "carol@zylker.com",
    "secondaryEmail": None, "phone": "1 888 900 9646", "mobile": None, "accountId": "1892000000975382",
    "ownerId": "1892000000056007", "type": None, "isAnonymous": False, "isSpam": False, "isDeleted": False,
    "isTrashed": False, "createdTime": "2016-05-20T06:12:25.000Z", "modifiedTime": "2026-01-05T09:12:44.000Z",
    "cf": {"cf_permanentaddress": None}, "customerHappiness": {"badPercentage": "0", "okPercentage": "0",
                                                               "goodPercentage": "100"},
}
ACCOUNT = {"id": "1892000000975382", "accountName": "Zylker", "email": "info@zylker.com", "website": "www.zylker.com",
           "createdTime": "2016-05-20T06:12:25.000Z", "modifiedTime": "2026-01-05T09:12:44.000Z", "cf": {}}
TASK = {"id": "1892000000131035", "subject": "Call back", "dueDate": "2026-01-07T10:00:00.000Z", "status": "Not Started",
        "priority": "High", "ticketId": "1892000000042032", "departmentId": "1892000000006907",
        "createdTime": "2026-01-05T09:12:44.000Z", "modifiedTime": "2026-01-05T09:12:44.000Z", "cf": {}}


def write(target, name, data):
    d = pathlib.Path("seeds") / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def ev(t, payload, prev=None, org=ORG):
    e = {"eventType": t, "orgId": org, "eventTime": "1618493667780", "payload": payload}
    if prev is not None:
        e["prevState"] = prev
    return e


# 1. webhook deliveries
write("webhook", "validation", "[]")
write("webhook", "ticket_add", json.dumps([ev("Ticket_Add", TICKET)]))
write("webhook", "ticket_update_prev", json.dumps([ev("Ticket_Update", TICKET, {"status": "New", "priority": None})]))
write("webhook", "ticket_delete", json.dumps([ev("Ticket_Delete", {"id": TICKET["id"]})]))
write("webhook", "batch", json.dumps([ev("Contact_Add", CONTACT), ev("Account_Update", ACCOUNT),
                                      ev("Task_Delete", {"id": TASK["id"]}), ev("Task_Add", TASK)]))
write("webhook", "thread", json.dumps([ev("Ticket_Thread_Add", {"id": "1892000000143237", "ticketId": TICKET["id"],
                                                                "direction": "in", "channel": "EMAIL",
                                                                "createdTime": "2026-01-05T09:12:44.000Z"})]))
write("webhook", "other_org", json.dumps([ev("Ticket_Add", TICKET, org="1")]))
write("webhook", "unknown_type", json.dumps([ev("Nonsense", {"id": "1"})]))
write("webhook", "notification", json.dumps({"text": f"zoho-desk-cdc module=tickets id={TICKET['id']}"}))

# 2. workflow notifications (the text)
write("notification", "template", f"zoho-desk-cdc module=tickets id={TICKET['id']}")
write("notification", "template_contacts", "zoho-desk-cdc module=contacts id=1892000000000123 (Jane changed)")
write("notification", "sim_default", f"Ticket #101 Ticket_Update: Real Time analysis (status Open, id {TICKET['id']})")
write("notification", "multi", "zoho-desk-cdc module=tickets id=1\nzoho-desk-cdc module=accounts id=2\n"
      "Contact #5 updated id 77\nzoho-desk-cdc module=ticket_threads id=3\n")

# 3. conversion: first byte picks the module (Module::all() order), the rest is the record
for i, (name, rec) in enumerate([("ticket", TICKET), ("contact", CONTACT), ("account", ACCOUNT), ("task", TASK)]):
    for pick in range(16):
        write("convert", f"{name}_{pick:02}", bytes([pick]) + json.dumps(rec).encode())
write("convert", "empty", b"\x00{}")
write("convert", "numbers", b"\x00" + json.dumps({"id": 1892000000042032, "threadCount": 121, "sharedCount": 1.5,
                                                  "isRead": "true", "cf": {"cf_x": [1, {"a": None}]}}).encode())

# 4. config: the example, and a minimal one
write("config", "example.toml", pathlib.Path("../config/example.toml").read_text())
write("config", "minimal.toml", f"""[kafka]
bootstrap_servers = "127.0.0.1:9092"
[schema_registry]
url = "http://127.0.0.1:8081"
[[sources]]
name = "main"
org_id = "{ORG}"
data_center = "eu"
client_id = "1000.X"
client_secret = "s"
modules = ["tickets", "contacts"]
[sources.quota]
requests_per_minute = 100
""")

# 5. JWTs of the simulator's shape (header alg/typ/kid, claims iss/aud/iat/exp). First byte: 1 = pin audience.
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token(header, claims, key=None):
    si = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    if key:
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=si.encode(),
                             capture_output=True, check=True).stdout
    else:
        sig = b"\x00" * 256
    return si + "." + b64(sig)


H = {"alg": "RS256", "typ": "JWT", "kid": "fuzzkid"}
C = {"iss": f"orgId:{ORG}", "aud": "webhookId:555", "iat": 1767604364, "exp": 1767604664}  # 2026-01-05, expired
key = os.environ.get("FUZZ_JWT_KEY")
cases = {
    "unsigned": (H, C, None),
    "alg_none": ({"alg": "none", "typ": "JWT"}, C, None),
    "hs256": ({"alg": "HS256", "typ": "JWT", "kid": "fuzzkid"}, C, None),
    "unknown_kid": ({**H, "kid": "other"}, C, None),
    "no_kid": ({"alg": "RS256", "typ": "JWT"}, C, None),
    "aud_array": (H, {**C, "aud": ["webhookId:555"]}, None),
}
if key:
    cases.update({
        "signed_expired": (H, C, key),
        "signed_wrong_org": (H, {**C, "iss": "orgId:1"}, key),
        "signed_no_iat": (H, {k: v for k, v in C.items() if k != "iat"}, key),
    })
for name, (h, c, k) in cases.items():
    for flag in (0, 1):
        write("jwt", f"{name}_{flag}", bytes([flag]) + token(h, c, k).encode())
write("jwt", "bearer", b"\x01Bearer " + token(H, C).encode())
write("jwt", "garbage", b"\x00a.b.c")
