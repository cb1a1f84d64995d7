# The Debian package (`./run package`, or `cpack -G DEB` in the build tree): pushhubd and
# pushhubctl, a hardened systemd unit, a default config under /etc/pushhub, the docs, and the
# Prometheus rules and Grafana dashboard. Its library dependencies are read off the binaries
# (dpkg-shlibdeps).
install(TARGETS pushhubd pushhubctl RUNTIME DESTINATION bin)
install(FILES ${CMAKE_CURRENT_LIST_DIR}/systemd/pushhubd.service DESTINATION /lib/systemd/system)
install(FILES ${CMAKE_CURRENT_LIST_DIR}/pushhubd.toml DESTINATION /etc/pushhub
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ)
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION share/doc/pushhub)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/ DESTINATION share/doc/pushhub)
install(FILES ${CMAKE_CURRENT_LIST_DIR}/prometheus/pushhub-alerts.yml
              ${CMAKE_CURRENT_LIST_DIR}/grafana/pushhub-dashboard.json
        DESTINATION share/pushhub)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME pushhub)
set(CPACK_PACKAGE_VENDOR pushhub)
set(CPACK_PACKAGE_CONTACT "pushhub maintainers <pushhub@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "self-hosted push notification hub (APNs, FCM, WNS; Azure Notification Hubs REST and gRPC)")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_STRIP_FILES ON)  # the debug info stays in the build tree
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "redis-server")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_CURRENT_LIST_DIR}/debian/conffiles ${CMAKE_CURRENT_LIST_DIR}/debian/postinst
    ${CMAKE_CURRENT_LIST_DIR}/debian/prerm ${CMAKE_CURRENT_LIST_DIR}/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
