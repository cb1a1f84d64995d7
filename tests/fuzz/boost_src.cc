// Boost.JSON and Boost.URL compiled from their headers, once for every fuzzer that needs them
// (the fuzz tree is built with clang apart from the main tree, so it cannot link Debian's
// libboost_json and libboost_url, which are built for the main tree's compiler and flags).
#include <boost/json/src.hpp>
#include <boost/url/src.hpp>
