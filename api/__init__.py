"""HTTP APIs served next to the page: the OpenAI-compatible speech endpoint, models and voices.

`router` holds the FastAPI routes (`/v1/...`); `app.main()` hands them to `gr.Blocks.launch` so
they live on the same server as the page, the Gradio API and the MCP server. `guard` (keys, the
per-client rate limit, CORS) sits in front of that whole server; `auth` says who is calling;
`strict_json` reads request bodies.
"""

from .openai_speech import router

__all__ = ["router"]
