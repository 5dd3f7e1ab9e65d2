# check_doc_errors.cmake - issue 10, item 7: every error a function can
# return is in its header. heist_await and heist_await_timeout return ENOMEM
# when no fiber or wait node can be had, and heist_sleep returns ENOMEM when
# it cannot wait (item 4: never an early 0; the timer thread starts with the
# scheduler, so there is no EAGAIN); their comments in future.h must say so.
#   cmake -DHEADER=include/heist/future.h -P test/check_doc_errors.cmake
file(READ "${HEADER}" text)

# The comment block right before the declaration of `fn`.
function(doc_of fn out)
  string(FIND "${text}" "int ${fn}(" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "${fn} is not declared in ${HEADER}")
  endif()
  string(SUBSTRING "${text}" 0 ${at} before)
  string(FIND "${before}" "/*" start REVERSE)
  string(SUBSTRING "${before}" ${start} -1 doc)
  set(${out} "${doc}" PARENT_SCOPE)
endfunction()

set(bad 0)
foreach(pair "heist_await:ENOMEM" "heist_await_timeout:ENOMEM"
             "heist_sleep:ENOMEM")
  string(REPLACE ":" ";" p "${pair}")
  list(GET p 0 fn)
  list(GET p 1 code)
  doc_of(${fn} doc)
  # heist_await_timeout's comment refers to heist_await's errors.
  if(fn STREQUAL "heist_await_timeout" AND doc MATCHES "heist_await with")
    doc_of(heist_await doc)
  endif()
  if(NOT doc MATCHES "${code}")
    message(SEND_ERROR "${fn}: its comment in future.h does not document ${code}")
    set(bad 1)
  endif()
endforeach()
if(NOT bad)
  message(STATUS "check_doc_errors: ok")
endif()
