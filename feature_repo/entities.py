"""The two things Tailor keys features by: a user and a piece of content.

Both keys are strings, as in the event contract. Feast silently coerces an int passed by mistake and then returns
None, so callers must pass ids as strings (``ml.features`` checks this).
"""

from conventions import OWNER
from feast import Entity, ValueType

user = Entity(
    name="user",
    join_keys=["user_id"],
    value_type=ValueType.STRING,
    description="A person who sees content; user_id as in the event contract.",
    tags={"owner": OWNER},
)

content = Entity(
    name="content",
    join_keys=["content_id"],
    value_type=ValueType.STRING,
    description="A piece of content that can be recommended; content_id as in the event contract.",
    tags={"owner": OWNER},
)
