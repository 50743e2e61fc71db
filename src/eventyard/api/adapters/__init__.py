"""The seed APIs, Segment and CloudEvents, as thin translations over the core services.

Each adapter is a module with a `routes` table mounted under its own prefix (`/bunce`,
`/eventbunker`, ...). A route names where its key comes from (`credentials`) and how its
errors look (`render_error`), so the application authenticates and answers errors the same
way for every door while each door keeps its own documented shapes. An adapter stores
nothing of its own: it builds native event items (or drafts) and calls the services.
"""

from __future__ import annotations

from eventyard.api.adapters import buildable, bunce, cdp, cloudevents, eventbunker, reward, segment

ADAPTERS = (bunce, eventbunker, buildable, cdp, reward, segment, cloudevents)
