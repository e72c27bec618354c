import streamlit as st

st.title("lab")
st.info("This page is being written.")
