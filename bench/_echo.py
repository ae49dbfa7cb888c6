"""The serving benchmark's yardstick: a bare FastAPI endpoint that validates a `/v1/predict` body
with the server's own pydantic models (built from the same contract by `serving.payloads`) and
echoes the records, on the same uvicorn stack (uvloop, httptools, no access log).

    python bench/_echo.py MODELS_DIR PORT
"""

# No `from __future__ import annotations`: FastAPI must see the body model itself, not the
# string "body_model", or it takes the body for a query parameter (422 on every request).
import sys
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from fastapi import FastAPI, Response

from serving.payloads import predict_request, record_model
from serving.schemas import load_contract
from serving.settings import Settings


def echo_app(models_dir: Path) -> FastAPI:
    contract = load_contract(models_dir)
    settings = Settings()
    record, _ = record_model(contract, settings.max_string_length)
    body_model: Any = predict_request(contract, record, settings.max_records)
    app = FastAPI()

    @app.post("/echo")
    async def echo(body: body_model) -> Response:  # type: ignore[valid-type]
        records = [r.model_dump(mode="json", by_alias=True) for r in body.records]
        return Response(orjson.dumps({"records": records}), media_type="application/json")

    @app.get("/ready")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    return app


def main(models_dir: str, port: str) -> None:
    uvicorn.run(
        echo_app(Path(models_dir)),
        host="127.0.0.1",
        port=int(port),
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
        server_header=False,
    )


if __name__ == "__main__":
    main(*sys.argv[1:3])
