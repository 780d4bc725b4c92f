"""Submit to an arena server from the command line: log in with a token, upload, wait with a progress display,
print the score (or the scorer's message and line for a bad file).

    python -m starter_kit.submit login --url http://127.0.0.1:8000 --token arena_...
    python -m starter_kit.submit submit dets.csv --challenge icartoonface-2020 --phase development --track detection
    python -m starter_kit.submit submit ... --method-name "ArcFace r50" --paper-url https://... --code-url https://...
    python -m starter_kit.submit quota --challenge icartoonface-2020 --phase development --track detection
    python -m starter_kit.submit status 42 | cancel 42 | final 42
    python -m starter_kit.submit leaderboard --challenge ... --phase ... --track ...

The token and URL are kept in ~/.config/arena/credentials.json (ARENA_CREDENTIALS moves it); ARENA_URL and
ARENA_TOKEN override both. Exit status: 0 scored (or done), 2 the file was rejected, 1 anything else.
Only the standard library and tqdm: it runs wherever the starter kit does.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

CHUNK = 1 << 20
DONE = {"finished", "failed", "cancelled"}


class ClientError(Exception):
    """The server refused a request: message is its JSON error message."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status, self.message = status, message


def _shown(metric: str, value: float) -> str:
    """As the platform's pages show scores (FORMATS.md): rank-1 as a percentage, mAP as a fraction."""
    return f"{100 * value:.2f} %" if metric.startswith("rank") else f"{value:.4f}"


def credentials_path() -> Path:
    return Path(os.environ.get("ARENA_CREDENTIALS") or Path.home() / ".config" / "arena" / "credentials.json")


def load_credentials() -> tuple[str, str]:
    stored = {}
    path = credentials_path()
    if path.exists():
        stored = json.loads(path.read_text())
    url, token = os.environ.get("ARENA_URL") or stored.get("url"), os.environ.get("ARENA_TOKEN") or stored.get("token")
    if not url or not token:
        raise ClientError(0, "not logged in: run `python -m starter_kit.submit login --url URL --token TOKEN`")
    return url.rstrip("/"), token


class Client:
    """A small client of /api/v1 (urllib; uploads are streamed from disk, never read whole into memory)."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 60):
        self.url, self.token, self.timeout = url.rstrip("/"), token, timeout

    def _request(self, method: str, path: str, body=None, headers: dict | None = None):
        headers = dict(headers or {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if isinstance(body, dict):
            body = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                data = response.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                message = json.loads(raw).get("message", raw.decode(errors="replace"))
            except ValueError:
                message = raw.decode(errors="replace")[:200]
            raise ClientError(exc.code, message) from None
        except urllib.error.URLError as exc:
            raise ClientError(0, f"cannot reach {self.url}: {exc.reason}") from None
        if not data:
            return None
        return json.loads(data) if data[:1] in (b"{", b"[") else data.decode()

    def me(self) -> dict:
        return self._request("GET", "/api/v1/me")

    def submission(self, submission_id: int) -> dict:
        return self._request("GET", f"/api/v1/submissions/{submission_id}")

    def cancel(self, submission_id: int) -> dict:
        return self._request("POST", f"/api/v1/submissions/{submission_id}/cancel", {})

    def select_final(self, submission_id: int, selected: bool = True) -> dict:
        return self._request("POST", f"/api/v1/submissions/{submission_id}/final", {"selected": selected})

    def quota(self, challenge: str, phase: str, track: str) -> dict:
        return self._request("GET", f"/api/v1/challenges/{challenge}/phases/{phase}/tracks/{track}/quota")

    def leaderboard(self, challenge: str, phase: str, track: str, split: str = "public") -> dict:
        return self._request(
            "GET", f"/api/v1/challenges/{challenge}/phases/{phase}/tracks/{track}/leaderboard?split={split}"
        )

    def submit(
        self,
        path: str | Path,
        challenge: str,
        phase: str,
        track: str,
        note: str = "",
        progress: bool = True,
        method: dict | None = None,
    ) -> dict:
        """Upload a file as multipart/form-data, streamed in 1 MiB chunks with a progress bar. `method`: any of
        method_name, method_description, paper_url, code_url."""
        path = Path(path)
        boundary = "arena" + secrets.token_hex(16)
        fields = {"phase": phase, "track": track, "note": note, **{k: v for k, v in (method or {}).items() if v}}
        head = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
            for k, v in fields.items()
        )
        filename = path.name.replace('"', "_")
        head += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        size = path.stat().st_size
        bar = tqdm(total=size, unit="B", unit_scale=True, desc="upload", disable=not progress)

        def body() -> Iterator[bytes]:
            yield head
            with open(path, "rb") as src:
                while chunk := src.read(CHUNK):
                    bar.update(len(chunk))
                    yield chunk
            yield tail

        headers = {
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(head) + size + len(tail)),
        }
        try:
            return self._request("POST", f"/api/v1/challenges/{challenge}/submissions", body(), headers)
        finally:
            bar.close()

    def wait(self, submission_id: int, timeout: float = 3600, poll: float = 1.0, progress: bool = True) -> dict:
        """Poll until the submission is finished, failed or cancelled; shows the state as it changes."""
        deadline = time.monotonic() + timeout
        state = None
        with tqdm(desc="scoring", bar_format="{desc}: {postfix} [{elapsed}]", disable=not progress) as bar:
            while True:
                sub = self.submission(submission_id)
                if sub["state"] != state:
                    state = sub["state"]
                    bar.set_postfix_str(state)
                if state in DONE:
                    return sub
                if time.monotonic() > deadline:
                    raise ClientError(0, f"submission {submission_id} is still {state} after {timeout:.0f} s")
                time.sleep(poll)


def _report(sub: dict) -> int:
    if sub["state"] == "finished":
        shown = _shown(sub["metric"], sub["public_score"])
        print(f"submission {sub['id']}: {sub['metric']} = {shown} on the public split")
        for key, value in sorted((sub.get("scores") or {}).items()):
            if isinstance(value, bool):
                continue
            if isinstance(value, int):
                print(f"  {key}: {value}")
            elif isinstance(value, float):
                print(f"  {key}: {value:.4f}")
        return 0
    if sub["state"] == "failed":
        where = f" (line {sub['error_line']})" if sub.get("error_line") else ""
        print(f"submission {sub['id']} failed{where}: {sub['error']}")
        return 2
    print(f"submission {sub['id']}: {sub['state']}")
    return 0


def _quota_line(quota: dict) -> str:
    return (
        f"submissions left in {quota['phase']}: {quota['left_today']} of {quota['per_day']} today, "
        f"{quota['left_total']} of {quota['total']} in total, {quota['left_in_flight']} of {quota['max_in_flight']} "
        f"more at once; the daily count resets at {quota['resets_at']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m starter_kit.submit", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    login = commands.add_parser("login", help="check a token and remember it with the server's URL")
    login.add_argument("--url", required=True)
    login.add_argument("--token", required=True)
    sub = commands.add_parser("submit", help="upload a submission file")
    sub.add_argument("file", type=Path)
    sub.add_argument("--challenge", required=True)
    sub.add_argument("--phase", required=True)
    sub.add_argument("--track", required=True)
    sub.add_argument("--note", default="")
    sub.add_argument("--method-name", default="", help="the method's short name, shown on the board")
    sub.add_argument("--method-description", default="", help="at most 500 characters")
    sub.add_argument("--paper-url", default="")
    sub.add_argument("--code-url", default="")
    sub.add_argument("--no-wait", action="store_true", help="return after the upload")
    sub.add_argument("--timeout", type=float, default=3600)
    for name in ("status", "cancel", "final"):
        command = commands.add_parser(name, help=f"{name} a submission")
        command.add_argument("id", type=int)
    quota = commands.add_parser("quota", help="print the submissions your team has left")
    for name in ("--challenge", "--phase", "--track"):
        quota.add_argument(name, required=True)
    board = commands.add_parser("leaderboard", help="print a leaderboard")
    for name in ("--challenge", "--phase", "--track"):
        board.add_argument(name, required=True)
    board.add_argument("--split", default="public")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    try:
        if args.command == "login":
            me = Client(args.url, args.token).me()
            path = credentials_path()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"url": args.url.rstrip("/"), "token": args.token}))
            path.chmod(0o600)
            print(f"logged in to {args.url} as {me['email']}; credentials in {path}")
            return 0
        client = Client(*load_credentials())
        if args.command == "submit":
            if not args.file.is_file():
                raise ClientError(0, f"no file {args.file}")
            method = {
                "method_name": args.method_name,
                "method_description": args.method_description,
                "paper_url": args.paper_url,
                "code_url": args.code_url,
            }
            created = client.submit(
                args.file, args.challenge, args.phase, args.track, args.note, not args.quiet, method=method
            )
            print(f"submission {created['id']} is {created['state']}")
            print(_quota_line(client.quota(args.challenge, args.phase, args.track)))
            if args.no_wait:
                return 0
            return _report(client.wait(created["id"], args.timeout, progress=not args.quiet))
        if args.command == "status":
            return _report(client.submission(args.id))
        if args.command == "cancel":
            return _report(client.cancel(args.id))
        if args.command == "final":
            picked = client.select_final(args.id)
            print(picked.get("message") or f"submission {args.id} is a final pick")
            return _report(picked)
        if args.command == "quota":
            print(_quota_line(client.quota(args.challenge, args.phase, args.track)))
            return 0
        data = client.leaderboard(args.challenge, args.phase, args.track, args.split)
        print(f"{'rank':>4}  {'name':<40} {data['metric']:>8}")
        for row in data["rows"]:
            rank, mark = row["rank"] or "-", "  (baseline)" if row["baseline"] else ""
            print(f"{rank:>4}  {row['name'][:40]:<40} {_shown(data['metric'], row['score']):>9}{mark}")
        return 0
    except ClientError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
