"""Schemathesis hooks for scripts/ci-schemathesis.sh (loaded through SCHEMATHESIS_HOOKS).

`POST /v1/uploads` takes `application/x-tar`: a tar archive laid out as a job's working directory
(`cumulo submit` packs a job's local workdir and file_mounts into one). Schemathesis has no
serializer for that media type, and no schema can say "a tar archive" beyond `format: binary`.
This serializer sends the bytes schemathesis generates for a schema-valid body as the one file of
a tar archive, which the server must keep (201); a schema-invalid body (not bytes) goes as its
JSON spelling, which is no tar archive, so the server must refuse it (400).
"""

import io
import json
import tarfile

import schemathesis


def _raw(value):
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    data = getattr(value, "data", None)  # schemathesis' Binary wrapper
    return bytes(data) if isinstance(data, (bytes, bytearray)) else None


@schemathesis.serializer("application/x-tar")
def tar_archive(ctx, value):
    raw = _raw(value)
    if raw is None:
        return json.dumps(value, default=str).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        member = tarfile.TarInfo("generated.bin")
        member.size = len(raw)
        archive.addfile(member, io.BytesIO(raw))
    return out.getvalue()
