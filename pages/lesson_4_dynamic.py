import streamlit as st

st.title("lesson_4_dynamic")
st.info("This page is being written.")
