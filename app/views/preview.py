"""Personalization preview: a user's profile, online features and history, and the page they would get next to the
non-personalized (holdout) page."""

import pandas as pd
import streamlit as st

from app.lib import cache, marts, preview
from app.lib.ui import literal, num, pct, stop_no_data, when
from ml.recommend import RecommendationInputError
from tailor.contract import MAX_ID_LENGTH

settings = cache.settings()
home = str(settings.home)
st.title("Personalization preview")
try:
    stamp = marts.stamp(settings, preview.INPUTS)
    marts.require(settings, preview.INPUTS, "the preview")
    users = cache.picker_users(home, stamp)
    moment = cache.preview_moment(home, stamp)
except marts.NoData as error:
    stop_no_data(error)

a, b, c, d = st.columns([2, 2, 1, 1])
picked = a.selectbox(
    "Pick a user (most active first)", users, index=preview.personalized_first(users), key="picked_user"
)
typed = b.text_input("...or type a user id", key="typed_user", max_chars=MAX_ID_LENGTH, placeholder="e.g. u0000042")
surface = c.selectbox("Surface", ["home", "feed"], key="surface")
k = int(d.number_input("Items", 1, 50, 10, key="k"))
if typed and not typed.strip():
    st.info("The typed id is blank (only spaces): showing the picked user instead.")
try:
    user_id = preview.checked_user_id(typed if typed.strip() else picked)
except preview.BadUserId as error:
    st.warning(str(error))
    st.stop()

st.markdown(f"Preview of **{literal(user_id)}** on {surface}")
st.caption(f"Pages as of {when(moment)} (the end of the published history), as `recommend` would serve them.")
profile = cache.profile(home, stamp, user_id)
if profile is None:
    st.warning(
        f"No user {literal(user_id)} in the published history (dim_users: no user record). Without a record the "
        "page below is personalized only from clicks or views the history holds for this id, else it is the "
        "cold-start page; check the id if you expected someone known."
    )

with st.spinner("Opening the recommender..."):
    recommender = cache.recommender(home, cache.recommender_stamp(settings))
try:
    page = preview.personalized_page(recommender, user_id, k, surface, moment)
    control = preview.control_page(recommender, user_id, k, surface, moment)
except RecommendationInputError as error:
    st.warning(f"Cannot build a page for that: {error}")
    st.stop()

if page.holdout:
    st.info(
        f"**{literal(user_id)} is in the personalization holdout** (arm `holdout` of personalization_holdout): they "
        "always get the non-personalized page, so both columns below are the same page.",
        icon=":material/block:",
    )

if profile is not None:
    st.subheader("Profile")
    p = st.columns(6)
    p[0].metric("Country", str(profile["country"]))
    p[1].metric("Plan", str(profile["plan"]))
    p[2].metric("Active days", num(profile["active_days"]))
    p[3].metric("Impressions", num(profile["impressions"]))
    p[4].metric("Clicks", num(profile["clicks"]))
    p[5].metric("CTR", pct(profile["ctr"]))
    st.caption(
        f"Signed up {when(profile['signup_at'])}; active from {when(profile['first_active_at'])} to "
        f"{when(profile['last_active_at'])}; {num(profile['conversions'])} conversions, "
        f"{num(profile['revenue_usd'], 2)} USD revenue."
    )

truth_folder = preview.truth_folder(settings)
show_truth = False
if truth_folder is not None:
    show_truth = st.toggle(
        "Show the simulator's true click probabilities (demo only: the pipeline never reads them)", key="truth"
    )

left, right = st.columns(2)
pages = {"personalized": (page.items, left), "control": (control, right)}
frames = {}
for name, (items, _column) in pages.items():
    frame = preview.page_frame(items)
    if show_truth and truth_folder is not None:
        truth = cache.truth(str(truth_folder), cache.file_stamp([truth_folder / "truth.json"]))
        frame = preview.with_truth(frame, truth, user_id, moment)
    frames[name] = frame
with left:
    why = f" ({page.fallback_reason})" if page.fallback_reason else ""
    st.subheader("Their page")
    st.markdown(
        f"Served by **{page.served_by}**{why}; model version {page.model_version or '-'}; "
        f"arm `{page.variants.get('personalization_holdout', '-')}`; {page.latency_ms:.0f} ms."
    )
    st.dataframe(frames["personalized"], hide_index=True, width="stretch", key="page")
with right:
    st.subheader("Non-personalized page (holdout / control)")
    st.markdown("Popular items in the user's country or on the surface, then editors' picks; no model, no exploration.")
    st.dataframe(frames["control"], hide_index=True, width="stretch", key="control_page")
if show_truth:
    means = {n: f["true_p_click_here"].mean() for n, f in frames.items()}
    t1, t2 = st.columns(2)
    t1.metric("True expected CTR of their page", pct(means["personalized"], 3))
    t2.metric("True expected CTR of the control page", pct(means["control"], 3))
    st.caption(
        "true_p_click_top: the true P(click) if the item were shown at the top, what a model slot's score predicts; "
        "true_p_click_here: at its slot's rank (the simulator's examination x attraction)."
    )

st.subheader("Online features (Feast online store)")
try:
    features = preview.online_features(recommender, user_id, moment)
except Exception as error:  # the online store down: say so, keep the page
    st.warning(f"The online store did not answer: {type(error).__name__}: {error}")
else:
    if features.empty:
        st.write(recommender.closed_reason or "No online features to show (no feature service loaded).")
    else:
        st.dataframe(features, hide_index=True, width="stretch", key="features")

st.subheader("Recent history")
history = cache.recent_history(home, stamp, user_id)
if history.empty:
    st.write("Nothing consumed yet.")
else:
    history["last_consumed_at"] = pd.to_datetime(history["last_consumed_at"])
    st.dataframe(history, hide_index=True, width="stretch", key="history")
