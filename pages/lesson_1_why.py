import streamlit as st

st.title("lesson_1_why")
st.info("This page is being written.")
