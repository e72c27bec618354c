import streamlit as st

st.title("lesson_6_devices")
st.info("This page is being written.")
