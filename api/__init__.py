"""HTTP APIs served next to the page: the OpenAI-compatible speech endpoint, models and voices.

`router` holds the FastAPI routes (`/v1/...`): speech, models and voices (`openai_speech`, with its
request in `speech_request`, its streamed answers in `speech_stream`, its errors in `errors`), saving a
cloned voice (`saved_voices`), the caller's pronunciation lexicon (`lexicon`); `app.main()` hands them
to `gr.Blocks.launch` so they live on the same server as the page, the Gradio API and the MCP server.
`guard` (routes, keys, cross-site writes, body sizes, CORS) sits in front of that whole server; `auth`
says which key a request carries and `caller` who is calling (once per request; the routes call the use
cases of `service/`, which meter the caller); `strict_json` reads request bodies.
"""

from fastapi import APIRouter

from .lexicon import router as lexicon_router
from .openai_speech import router as speech_router
from .saved_voices import router as saved_voices_router

router = APIRouter()
# plain routes: app.py lists them
router.routes.extend([*speech_router.routes, *saved_voices_router.routes, *lexicon_router.routes])

__all__ = ["router"]
