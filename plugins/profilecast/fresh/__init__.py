"""Fresh facts: what happened since the last build, for every render and the profile API.

The collector turns each accepted event into facts (``facts``) and writes them to a small
store beside the warehouse (``store``: SQLite in WAL mode, so the collector writes while
renders read). A render overlays them on the built profiles (``overlay``): a purchase after
the cart takes the customer out of the cart reminder, an unsubscribe, complaint or bounce
suppresses, recent cart and view events update the blocks that show them. The daily build
folds the same events into the warehouse from the journal; facts older than the build's
lookback are then ignored.
"""

from profilecast.fresh.facts import Fact, facts_from_esp, facts_from_web
from profilecast.fresh.overlay import Overlay, load_overlay
from profilecast.fresh.store import FreshStore

__all__ = ["Fact", "FreshStore", "Overlay", "facts_from_esp", "facts_from_web", "load_overlay"]
